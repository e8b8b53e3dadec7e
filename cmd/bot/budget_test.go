package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/comm100bot/bot/internal/actions"
	"github.com/comm100bot/bot/internal/comm100/comm100test"
	"github.com/comm100bot/bot/internal/job"
)

// -long runs the dispatch tests at the sizes of the design (30 calls per
// 10s with 200 jobs; a 60-second outage). They take minutes; CI runs them
// scaled down.
var long = flag.Bool("long", false, "run the dispatch tests at full size")

// queueJobs publishes n ticket jobs straight onto ACTIONS, as the rules would.
func queueJobs(t *testing.T, a *app, n int, prefix string) {
	t.Helper()
	pub := &actions.Queue{JS: a.bus.JS}
	for i := range n {
		j := &job.Job{
			ID: fmt.Sprintf("%s-%d/r/0", prefix, i), EventID: fmt.Sprintf("%s-%d", prefix, i), Rule: "r",
			Action: "comm100.ticket.create", Params: map[string]any{"subject": fmt.Sprintf("%s %d", prefix, i)},
			Created: time.Now(),
		}
		if err := pub.Publish(t.Context(), j); err != nil {
			t.Fatal(err)
		}
	}
}

// windowMax is the largest number of calls the simulator saw in any window of per.
func windowMax(reqs []comm100test.Request, per time.Duration) int {
	ts := make([]time.Time, 0, len(reqs))
	for _, r := range reqs {
		ts = append(ts, r.Time)
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	best, lo := 0, 0
	for hi := range ts {
		for ts[hi].Sub(ts[lo]) >= per {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}

func countStatus(reqs []comm100test.Request, status int) int {
	n := 0
	for _, r := range reqs {
		if r.Status == status {
			n++
		}
	}
	return n
}

// TestBudgetIsNeverExceeded queues more jobs than the budget allows in many
// windows, with the same budget on the bot and the simulator: the simulator
// never answers 403, and no window ever holds more than the budget.
func TestBudgetIsNeverExceeded(t *testing.T) {
	calls, per, jobs := 10, 2*time.Second, 45
	if *long {
		calls, per, jobs = 30, 10*time.Second, 200
	}
	sim, simArgs := startSim(t, comm100test.Config{RateLimit: comm100test.RateLimit{Calls: calls, Per: per}})
	a := startBot(t, append(simArgs,
		"--comm100.rate_limit.calls", fmt.Sprint(calls),
		"--comm100.rate_limit.per", per.String(),
		"--dispatch.workers", "8")...)
	start := time.Now()
	queueJobs(t, a, jobs, "budget")
	waitFor(t, "every job to be done", time.Duration(jobs/calls+3)*per+30*time.Second, func() bool {
		return countStatus(sim.Requests(), http.StatusCreated) >= jobs
	})
	reqs := sim.Requests()
	if n := countStatus(reqs, http.StatusForbidden); n > 0 {
		t.Errorf("the simulator answered 403 %d times", n)
	}
	most := windowMax(reqs, per)
	if most > calls {
		t.Errorf("a window of %s held %d calls, the budget is %d", per, most, calls)
	}
	// With a backlog, the fastest the budget allows is one full batch of
	// calls per window: the k-th batch can start k windows after the first.
	// Budget use is that ideal span over the span the calls took.
	span := reqs[len(reqs)-1].Time.Sub(reqs[0].Time)
	ideal := time.Duration((len(reqs)-1)/calls) * per
	t.Logf("%d calls in %s; largest window count %d of %d; budget use %.1f%% (ideal span %s, took %s)",
		len(reqs), time.Since(start).Round(time.Millisecond), most, calls,
		100*float64(ideal)/float64(span), ideal, span.Round(time.Millisecond))
	// The idempotency window: from Comm100's answer to the job's record.
	sum, _ := strconv.ParseFloat(metricValue(t, a, "bot_job_record_seconds_sum"), 64)
	n, _ := strconv.ParseFloat(metricValue(t, a, "bot_job_record_seconds_count"), 64)
	if n > 0 {
		t.Logf("answer-to-record window: mean %s over %.0f jobs", time.Duration(sum/n*float64(time.Second)).Round(time.Microsecond), n)
	}
}

// TestOutageDelaysJobsAndLosesNone: the simulator answers 503 to everything
// for a while; every job completes after it, the calls made during the
// outage thin out as backoff grows, and nothing reaches the DLQ.
func TestOutageDelaysJobsAndLosesNone(t *testing.T) {
	outage, jobs := 8*time.Second, 20
	if *long {
		outage, jobs = 60*time.Second, 50
	}
	from := time.Now()
	sim, simArgs := startSim(t, comm100test.Config{Faults: comm100test.Faults{OutageFrom: from, OutageFor: outage}})
	a := startBot(t, append(simArgs, "--dispatch.retry_in_process", "3s", "--dispatch.workers", "8")...)
	queueJobs(t, a, jobs, "outage")
	waitFor(t, "every job to be done", outage+2*time.Minute, func() bool {
		return countStatus(sim.Requests(), http.StatusCreated) >= jobs
	})
	reqs := sim.Requests()
	var firstHalf, secondHalf int
	for _, r := range reqs {
		switch off := r.Time.Sub(from); {
		case r.Status != http.StatusServiceUnavailable:
		case off < outage/2:
			firstHalf++
		default:
			secondHalf++
		}
	}
	// Recovery: from the outage's end to the first ticket, and to the last.
	var first, last time.Time
	for _, r := range reqs {
		if r.Status == http.StatusCreated && r.Time.After(from.Add(outage)) {
			if first.IsZero() {
				first = r.Time
			}
			last = r.Time
		}
	}
	t.Logf("outage of %s: %d calls in its first half, %d in its second; %d calls in all for %d jobs; "+
		"first ticket %s after it ended, last %s after",
		outage, firstHalf, secondHalf, len(reqs), jobs,
		first.Sub(from.Add(outage)).Round(time.Millisecond), last.Sub(from.Add(outage)).Round(time.Millisecond))
	if firstHalf == 0 || 2*secondHalf > firstHalf {
		t.Errorf("calls during the outage did not thin out: %d then %d", firstHalf, secondHalf)
	}
	if n := countStatus(reqs, http.StatusCreated); n != jobs {
		t.Errorf("%d tickets created, want %d (one per job)", n, jobs)
	}
	dead, err := (&actions.DLQ{JS: a.bus.JS}).List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 0 {
		t.Errorf("%d jobs reached the DLQ", len(dead))
	}
}

// TestNotFoundGoesToDLQAndRedriveReplaysIt: a note on a ticket that does
// not exist yet is answered 404, lands in the DLQ with its story, and
// `bot dlq redrive` replays it once the ticket exists.
func TestNotFoundGoesToDLQAndRedriveReplaysIt(t *testing.T) {
	sim, simArgs := startSim(t, comm100test.Config{})
	a := startBot(t, simArgs...)
	pub := &actions.Queue{JS: a.bus.JS}
	j := &job.Job{ID: "ev-404/note-rule/0", EventID: "ev-404", Rule: "note-rule", Action: "comm100.ticket.note",
		Params: map[string]any{"ticket_id": "1001", "text": "shipped"}, Created: time.Now()}
	if err := pub.Publish(t.Context(), j); err != nil {
		t.Fatal(err)
	}
	dlq := &actions.DLQ{JS: a.bus.JS}
	var dead []actions.DeadLetter
	waitFor(t, "the job to reach the DLQ", 10*time.Second, func() bool {
		dead, _ = dlq.List(t.Context())
		return len(dead) == 1
	})
	d := dead[0]
	if d.Job.ID != j.ID || d.Job.Rule != "note-rule" || d.Job.EventID != "ev-404" || d.Reason != "permanent failure" {
		t.Errorf("dead letter: got job %q rule %q event %q reason %q", d.Job.ID, d.Job.Rule, d.Job.EventID, d.Reason)
	}
	if len(d.Attempts) != 1 || d.Attempts[0].Status != http.StatusNotFound || !strings.Contains(d.Error, "404") {
		t.Errorf("dead letter story: attempts %+v error %q, want one 404 attempt", d.Attempts, d.Error)
	}

	// Make the ticket exist (the simulator numbers tickets from 1001), then redrive.
	queueJobs(t, a, 1, "make-ticket")
	waitFor(t, "ticket 1001", 10*time.Second, func() bool { return countStatus(sim.Requests(), http.StatusCreated) == 1 })
	var out strings.Builder
	natsURL := a.bus.Conn.ConnectedUrl()
	if err := run(t.Context(), []string{"dlq", "redrive", fmt.Sprint(d.Seq), "--nats.url", natsURL}, nil, &out, &out); err != nil {
		t.Fatalf("bot dlq redrive: %v\n%s", err, out.String())
	}
	waitFor(t, "the redriven note", 10*time.Second, func() bool {
		for _, r := range sim.Requests() {
			if r.Path == "/v4/ticketing/notes" && r.Status == http.StatusCreated {
				return true
			}
		}
		return false
	})
	out.Reset()
	if err := run(t.Context(), []string{"dlq", "list", "--nats.url", natsURL}, nil, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "0 dead letter(s)") {
		t.Errorf("bot dlq list after the redrive:\n%s", out.String())
	}
	var story map[string]any
	_ = json.Unmarshal([]byte(indentJSON(d, "")), &story)
	if story["reason"] != "permanent failure" {
		t.Errorf("bot dlq show would print %v", story)
	}
}

// TestBare403IsGivenUpAfterAFewTries: Comm100 answers both "permission
// denied" and "limit exceeded" with 403; one that says neither is retried a
// few times, then the job goes to the DLQ instead of retrying for a day.
func TestBare403IsGivenUpAfterAFewTries(t *testing.T) {
	var calls atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusForbidden)
	}))
	defer api.Close()
	a := startBot(t, "--comm100.base_url", api.URL+"/v4/", "--comm100.site_id", "1",
		"--comm100.email", "a@b.c", "--comm100.api_key", "k")
	queueJobs(t, a, 1, "forbidden")
	dlq := &actions.DLQ{JS: a.bus.JS}
	var dead []actions.DeadLetter
	waitFor(t, "the job to reach the DLQ", 20*time.Second, func() bool {
		dead, _ = dlq.List(t.Context())
		return len(dead) == 1
	})
	if n := calls.Load(); n != 3 {
		t.Errorf("Comm100 was called %d times, want 3", n)
	}
	if !strings.Contains(dead[0].Error, "permission denied") || len(dead[0].Attempts) != 3 {
		t.Errorf("dead letter: %q with %d attempts", dead[0].Error, len(dead[0].Attempts))
	}
}

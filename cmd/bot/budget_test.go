package main

import (
	"encoding/json"
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
	"github.com/comm100bot/bot/internal/testenv"
)

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

// TestBudgetIsNeverExceeded queues more jobs than the budget allows in
// several windows, with the same budget on the bot and the simulator: the
// simulator never answers 403, and no window ever holds more than the
// budget. The limiter's promise does not depend on latency, so short
// windows prove it as well as long ones; TestBudgetIsNeverExceededLong runs
// it at the size of the design.
func TestBudgetIsNeverExceeded(t *testing.T) {
	t.Parallel()
	testBudget(t, 5, 500*time.Millisecond, 22)
}

// TestBudgetIsNeverExceededLong: 200 jobs through 30 calls per 10 s.
func TestBudgetIsNeverExceededLong(t *testing.T) {
	testenv.Long(t)
	t.Parallel()
	testBudget(t, 30, 10*time.Second, 200)
}

func testBudget(t *testing.T, calls int, per time.Duration, jobs int) {
	sim, simArgs := startSim(t, comm100test.Config{RateLimit: comm100test.IPRateLimit{Calls: calls, Per: per}})
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
// until the test ends the outage; every job completes after it, exactly
// once, nothing reaches the DLQ, and the calls made during the outage stay
// few: the pool backs off as one and probes with one call at a time,
// instead of every queued job retrying on its own. The outage lasts until
// three calls have failed, two pauses of the pool, with two workers (the
// failures of calls made at once each lengthen the pause, and the test
// would wait it out); TestOutageDelaysJobsAndLosesNoneLong runs a minute's
// outage with eight.
func TestOutageDelaysJobsAndLosesNone(t *testing.T) {
	t.Parallel()
	testOutage(t, 2, 3, 0, 10)
}

// TestOutageDelaysJobsAndLosesNoneLong: 50 jobs through a 60 s outage.
func TestOutageDelaysJobsAndLosesNoneLong(t *testing.T) {
	testenv.Long(t)
	t.Parallel()
	testOutage(t, 8, 1, 60*time.Second, 50)
}

// testOutage queues jobs for workers into an outage that ends once
// minFailed calls have failed over at least minSpan.
func testOutage(t *testing.T, workers, minFailed int, minSpan time.Duration, jobs int) {
	sim, simArgs := startSim(t, comm100test.Config{Faults: comm100test.Faults{OutageFrom: time.Now(), OutageFor: 24 * time.Hour}})
	a := startBot(t, append(simArgs, "--dispatch.retry_in_process", "3s", "--dispatch.workers", fmt.Sprint(workers))...)
	queueJobs(t, a, jobs, "outage")
	var first time.Time
	waitFor(t, "the outage to be met", minSpan+time.Minute, func() bool {
		var failed []comm100test.Request
		for _, r := range sim.Requests() {
			if r.Status == http.StatusServiceUnavailable {
				failed = append(failed, r)
			}
		}
		if len(failed) > 0 {
			first = failed[0].Time
		}
		return len(failed) >= minFailed && time.Since(first) >= minSpan
	})
	if err := sim.SetFaults(comm100test.Faults{}); err != nil {
		t.Fatal(err)
	}
	span := time.Since(first)
	waitFor(t, "every job to be done", 2*time.Minute, func() bool {
		return countStatus(sim.Requests(), http.StatusCreated) >= jobs
	})
	waitIdle(t, a)
	reqs := sim.Requests()
	failed := countStatus(reqs, http.StatusServiceUnavailable)
	t.Logf("outage of %s: %d failed calls, %d calls in all for %d jobs", span.Round(time.Millisecond), failed, len(reqs), jobs)
	if most := maxOutageCalls(workers, span); failed > most {
		t.Errorf("%d calls during an outage of %s, want at most %d: the calls did not thin out", failed, span, most)
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

// maxOutageCalls bounds the failing calls of an outage: the calls in
// flight when it starts (one per worker), then one probe per pause. The
// pauses grow from 250 ms, doubling, with jitter down to half, so the k-th
// lasts at least 125 ms * 2^(k-1), and k pauses fit in the outage only while
// 125 ms * (2^k - 1) <= outage. The bound allows twice that many probes:
// it checks that the calls thin out, not the exact schedule, which
// internal/actions tests. A slow machine only makes fewer calls; without
// the shared backoff every worker would retry on its own schedule and make
// several times more.
func maxOutageCalls(workers int, outage time.Duration) int {
	pauses := 0
	for span := 125 * time.Millisecond; span <= outage; span = 2*span + 125*time.Millisecond {
		pauses++
	}
	return workers + 2*(pauses+1)
}

// TestNotFoundGoesToDLQAndRedriveReplaysIt: a note on a ticket that does
// not exist yet is answered 404, lands in the DLQ with its story, and
// `bot dlq redrive` replays it once the ticket exists.
func TestNotFoundGoesToDLQAndRedriveReplaysIt(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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

package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/comm100/comm100test"
	"github.com/comm100bot/bot/internal/event"
	"github.com/comm100bot/bot/internal/job"
	"github.com/comm100bot/bot/internal/testenv"
)

const ticketsPath = "/v4/ticketing/tickets"

// TestPoolCarriesOutAJobOnce runs a job with the real KV ledger and with the
// in-memory one: one call, the job removed from the stream, its completion
// event published, and a second copy of it acknowledged without a call.
func TestPoolCarriesOutAJobOnce(t *testing.T) {
	t.Parallel()
	for _, ledger := range []string{"kv", "memory"} {
		t.Run(ledger, func(t *testing.T) {
			b := newBench(t)
			s := b.sim(comm100test.Config{}, 100, time.Minute)
			reg := prometheus.NewRegistry()
			var seen observed
			o := poolOpts{limiter: s.limiter, reg: reg, tune: seen.tune}
			if ledger == "memory" {
				o.ledger = newMemLedger()
			}
			b.startPool(Config{}, s.rt, o)
			j := ticketJob("once")
			j.Emit = true
			b.publish(j)
			waitFor(t, "the ticket and an idle pool", 10*time.Second, func() bool {
				return calls(s.Requests(), "POST", ticketsPath, http.StatusCreated) == 1 && b.idle()
			})
			b.waitRemoved(0)
			raw, err := b.js.Stream(t.Context(), bus.EventsStream)
			if err != nil {
				t.Fatal(err)
			}
			m, err := raw.GetLastMsgForSubject(t.Context(), "events.bot.action.completed")
			if err != nil {
				t.Fatalf("no completion event: %v", err)
			}
			var ev event.Event
			if err := json.Unmarshal(m.Data, &ev); err != nil {
				t.Fatal(err)
			}
			res, _ := ev.Data["result"].(map[string]any)
			if ev.ID != "action.completed:"+j.ID || res["ticket_id"] != "1001" {
				t.Errorf("completion event: got id %q data %v", ev.ID, ev.Data)
			}

			b.publishCopy(j, "another-copy")
			waitFor(t, "the copy to be handled", 10*time.Second, func() bool {
				return jobsMetric(t, reg, j.Action, "duplicate") == 1 && b.idle()
			})
			if n := calls(s.Requests(), "POST", ticketsPath, 0); n != 1 {
				t.Errorf("Comm100 was called %d times, want 1", n)
			}
			if got := seen.list(); !slices.Equal(got, []string{j.ID}) {
				t.Errorf("jobs observed as done: got %q, want only %q", got, j.ID)
			}
		})
	}
}

// windowMax is the largest number of calls in any window of per.
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

// TestPoolKeepsTheBudget queues three budgets' worth of jobs with the same
// budget on the pool and the simulator: the simulator never answers 403 and
// no window holds more than the budget.
func TestPoolKeepsTheBudget(t *testing.T) {
	t.Parallel()
	const budget, per, jobs = 5, time.Second, 15
	b := newBench(t)
	s := b.sim(comm100test.Config{RateLimit: comm100test.IPRateLimit{Calls: budget, Per: per}}, budget, per)
	b.startPool(Config{Workers: 8}, s.rt, poolOpts{limiter: s.limiter})
	for i := range jobs {
		b.publish(ticketJob("budget-" + string(rune('a'+i))))
	}
	waitFor(t, "every job", 30*time.Second, func() bool {
		return calls(s.Requests(), "POST", ticketsPath, http.StatusCreated) == jobs
	})
	reqs := s.Requests()
	if n := calls(reqs, "POST", ticketsPath, http.StatusForbidden); n > 0 {
		t.Errorf("the simulator answered 403 %d times", n)
	}
	if most := windowMax(reqs, per); most > budget {
		t.Errorf("a window of %s held %d calls, the budget is %d", per, most, budget)
	}
}

// outageRun queues jobs into a Comm100 outage and returns the calls made and
// the time from the outage's end to the first ticket created after it.
func outageRun(t *testing.T, outage time.Duration, jobs int) ([]comm100test.Request, time.Time, time.Duration) {
	b := newBench(t)
	s := b.sim(comm100test.Config{}, 300, 5*time.Minute)
	b.startPool(Config{Workers: 8, RetryInProcess: time.Second}, s.rt, poolOpts{limiter: s.limiter})
	from := time.Now()
	if err := s.SetFaults(comm100test.Faults{OutageFrom: from, OutageFor: outage}); err != nil {
		t.Fatal(err)
	}
	for i := range jobs {
		b.publish(ticketJob("outage-" + string(rune('a'+i%26)) + string(rune('a'+i/26))))
	}
	waitFor(t, "every job", outage+2*time.Minute, func() bool {
		return calls(s.Requests(), "POST", ticketsPath, http.StatusCreated) >= jobs && b.idle()
	})
	reqs := s.Requests()
	end := from.Add(outage)
	var recovery time.Duration
	for _, r := range reqs {
		if r.Status == http.StatusCreated && r.Time.After(end) {
			recovery = r.Time.Sub(end)
			break
		}
	}
	if n := calls(reqs, "POST", ticketsPath, http.StatusCreated); n != jobs {
		t.Errorf("%d tickets created, want %d (one per job)", n, jobs)
	}
	if dead := b.dead(); len(dead) != 0 {
		t.Errorf("%d jobs reached the DLQ", len(dead))
	}
	return reqs, from, recovery
}

// thinning counts the failed calls in each half of the outage.
func thinning(reqs []comm100test.Request, from time.Time, outage time.Duration) (first, second int) {
	for _, r := range reqs {
		switch off := r.Time.Sub(from); {
		case r.Status != http.StatusServiceUnavailable:
		case off < outage/2:
			first++
		default:
			second++
		}
	}
	return first, second
}

// TestPoolRidesOutAnOutage: Comm100 answers 503 to everything for a while;
// every job completes after it, once, the calls made during the outage thin
// out, and nothing reaches the DLQ.
func TestPoolRidesOutAnOutage(t *testing.T) {
	t.Parallel()
	const outage, jobs = 4 * time.Second, 12
	reqs, from, recovery := outageRun(t, outage, jobs)
	first, second := thinning(reqs, from, outage)
	t.Logf("outage of %s: %d calls in its first half, %d in its second; first ticket %s after it ended; %d calls for %d jobs",
		outage, first, second, recovery.Round(time.Millisecond), len(reqs), jobs)
	// The pause doubles with every failure in a row (table-tested in
	// policy_test.go); here the calls of the outage's second half must be
	// fewer than those of its first.
	if first == 0 || second >= first {
		t.Errorf("calls during the outage did not thin out: %d then %d", first, second)
	}
}

// TestPoolRecoversFromALongOutageLong is the outage of the design's size: a
// minute of 503s over 50 queued jobs. It reports how long after the outage
// the first ticket is created; the pool's probe interval caps it at 15s.
func TestPoolRecoversFromALongOutageLong(t *testing.T) {
	testenv.Long(t)
	const outage, jobs = time.Minute, 50
	reqs, from, recovery := outageRun(t, outage, jobs)
	first, second := thinning(reqs, from, outage)
	var last time.Time
	for _, r := range reqs {
		if r.Status == http.StatusCreated && r.Time.After(last) {
			last = r.Time
		}
	}
	t.Logf("outage of %s: %d calls in its first half, %d in its second; first ticket %s after it ended, all %d tickets %s after it ended",
		outage, first, second, recovery.Round(time.Millisecond), jobs, last.Sub(from.Add(outage)).Round(time.Millisecond))
}

// TestPoolRunsJobsOnTheOldSubjects: jobs that an earlier version stored on
// "actions.run.<action>", one subject per action, still run.
func TestPoolRunsJobsOnTheOldSubjects(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	s := b.sim(comm100test.Config{}, 100, time.Minute)
	b.startPool(Config{}, s.rt, poolOpts{limiter: s.limiter})
	j := ticketJob("stored-by-an-older-bot")
	data, err := job.Encode(j)
	if err != nil {
		t.Fatal(err)
	}
	msg := &nats.Msg{Subject: job.RunSubjectPrefix + j.Action, Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, job.Token(j.ID))
	if _, err := b.js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ticket", 10*time.Second, func() bool {
		return calls(s.Requests(), "POST", ticketsPath, http.StatusCreated) == 1
	})
}

// TestPoolRemovesTheJobsOfBothLanes: tickets and log jobs, stored
// interleaved, are each carried out once, by their own lane, and all of them
// leave ACTIONS once both lanes are done; then a lane that has been idle
// holds back no removal of the other's jobs.
func TestPoolRemovesTheJobsOfBothLanes(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	s := b.sim(comm100test.Config{}, 100, time.Minute)
	var seen observed
	p, _ := b.startPool(Config{}, s.rt, poolOpts{limiter: s.limiter, tune: seen.tune})
	// The log job of the same event as a ticket job: its second action.
	logAfter := func(id string) *job.Job {
		return &job.Job{ID: id + "/r/1", EventID: id, Rule: "r", Action: "log",
			Params: map[string]any{"message": "seen " + id}, Created: time.Now().UTC()}
	}
	for i := range 5 {
		id := "both-" + string(rune('a'+i))
		b.publish(ticketJob(id), logAfter(id))
	}
	waitFor(t, "every job", 10*time.Second, func() bool { return len(seen.list()) == 10 && b.idle() })
	if n := calls(s.Requests(), "POST", ticketsPath, http.StatusCreated); n != 5 {
		t.Errorf("%d tickets, want 5", n)
	}
	b.waitRemoved(0)
	for i := range 3 {
		b.publish(logAfter("later-" + string(rune('a'+i))))
	}
	waitFor(t, "the later log jobs", 10*time.Second, func() bool { return len(seen.list()) == 13 && b.idle() })
	b.waitRemoved(0)
	// And the purge's floor has reached the last job: neither lane holds
	// it back.
	stream, err := b.js.Stream(t.Context(), bus.ActionsStream)
	if err != nil {
		t.Fatal(err)
	}
	last := stream.CachedInfo().State.LastSeq
	var floor uint64
	waitFor(t, "the sweeper's floor at the last job", 5*time.Second, func() bool {
		floor, _, err = p.sweeper.floor(t.Context())
		return err == nil && floor == last
	})
}

// TestPoolUndecodableJobGoesToTheDLQ: a message on the jobs' subjects that
// is not a job is not dropped: it is kept in the DLQ as it was stored, with
// the decoder's error, and a redrive of it is refused.
func TestPoolUndecodableJobGoesToTheDLQ(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	s := b.sim(comm100test.Config{}, 100, time.Minute)
	b.startPool(Config{}, s.rt, poolOpts{limiter: s.limiter})
	msg := &nats.Msg{Subject: job.RunSubjectPrefix + "log.x", Data: []byte(`{"id": 7, "not": "a job"`), Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, "foreign-1")
	if _, err := b.js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	var dead []DeadLetter
	waitFor(t, "the message in the DLQ", 10*time.Second, func() bool { dead = b.dead(); return len(dead) == 1 })
	d := dead[0]
	if d.Reason != ReasonUndecodable || d.Job.ID != "foreign-1" || d.Stored != `{"id": 7, "not": "a job"` ||
		d.StoredSubject != msg.Subject || d.Error == "" {
		t.Errorf("dead letter: %+v", d)
	}
	if _, err := b.dlq.Redrive(t.Context(), d.Seq, time.Now()); !errors.Is(err, ErrUndecodable) {
		t.Errorf("redrive: got %v, want ErrUndecodable", err)
	}
	b.waitRemoved(0)

	// On a Comm100 job's subject, which both lanes are given: one dead
	// letter, from the Comm100 lane.
	msg = &nats.Msg{Subject: job.RunSubjectPrefix + "comm100.ticket.create.x", Data: []byte(`{"id": 8`), Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, "foreign-2")
	if _, err := b.js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second message in the DLQ", 10*time.Second, func() bool { return len(b.dead()) >= 2 })
	b.waitRemoved(0)
	waitFor(t, "the pool idle", 10*time.Second, b.idle)
	if dead = b.dead(); len(dead) != 2 {
		t.Errorf("%d dead letters for two messages, want 2", len(dead))
	}
}

// TestPoolDeadLetterAndRedrive: a note on a ticket that does not exist is
// answered 404, lands in the DLQ with its story, and a copy of it stored
// after it left the stream (its event evaluated again) is not tried again;
// a redrive replays it once the ticket exists.
func TestPoolDeadLetterAndRedrive(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	s := b.sim(comm100test.Config{}, 100, time.Minute)
	reg := prometheus.NewRegistry()
	b.startPool(Config{}, s.rt, poolOpts{limiter: s.limiter, reg: reg})
	note := &job.Job{ID: "ev-404/note-rule/0", EventID: "ev-404", Rule: "note-rule", Action: "comm100.ticket.note",
		Params: map[string]any{"ticket_id": "1001", "text": "shipped"}, Created: time.Now().UTC()}
	b.publish(note)
	var dead []DeadLetter
	waitFor(t, "the job in the DLQ", 10*time.Second, func() bool { dead = b.dead(); return len(dead) == 1 })
	d := dead[0]
	if d.Job.ID != note.ID || d.Job.Rule != "note-rule" || d.Job.EventID != "ev-404" || d.Reason != ReasonPermanent {
		t.Errorf("dead letter: got job %q rule %q event %q reason %q", d.Job.ID, d.Job.Rule, d.Job.EventID, d.Reason)
	}
	if len(d.Attempts) != 1 || d.Attempts[0].Status != http.StatusNotFound || d.Attempts[0].Delivery != 1 || !strings.Contains(d.Error, "404") {
		t.Errorf("dead letter story: attempts %+v error %q, want one 404 attempt", d.Attempts, d.Error)
	}

	b.waitRemoved(0)
	b.publishCopy(note, "stored-again")
	waitFor(t, "the copy acknowledged", 10*time.Second, func() bool { return jobsMetric(t, reg, note.Action, "duplicate") == 1 })
	if n := calls(s.Requests(), "POST", "/v4/ticketing/notes", http.StatusNotFound); n != 1 {
		t.Errorf("%d calls for the note, want 1: a copy of a dead job was tried again", n)
	}
	if dead := b.dead(); len(dead) != 1 {
		t.Errorf("%d dead letters, want the one", len(dead))
	}

	b.publish(ticketJob("make-ticket")) // the simulator numbers tickets from 1001
	waitFor(t, "ticket 1001", 10*time.Second, func() bool {
		return calls(s.Requests(), "POST", ticketsPath, http.StatusCreated) == 1
	})
	redriven, err := b.dlq.Redrive(t.Context(), d.Seq, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%s/redrive/%d", note.ID, d.Seq); redriven.ID != want || redriven.Redrives != note.ID {
		t.Errorf("redriven job id %q redriving %q, want %q redriving %q", redriven.ID, redriven.Redrives, want, note.ID)
	}
	waitFor(t, "the redriven note", 10*time.Second, func() bool {
		return calls(s.Requests(), "POST", "/v4/ticketing/notes", http.StatusCreated) == 1
	})
	if dead := b.dead(); len(dead) != 0 {
		t.Errorf("%d dead letters after the redrive", len(dead))
	}
}

// TestRedriveOfAJobDoneSince: a dead letter whose job succeeded after it
// died (a copy of it, stored again, ran) is removed, and nothing runs again.
func TestRedriveOfAJobDoneSince(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	s := b.sim(comm100test.Config{}, 100, time.Minute)
	b.startPool(Config{}, s.rt, poolOpts{limiter: s.limiter})
	note := &job.Job{ID: "ev-done/note-rule/0", EventID: "ev-done", Rule: "note-rule", Action: "comm100.ticket.note",
		Params: map[string]any{"ticket_id": "1001", "text": "shipped"}, Created: time.Now().UTC()}
	b.publish(note)
	var dead []DeadLetter
	waitFor(t, "the job in the DLQ", 10*time.Second, func() bool { dead = b.dead(); return len(dead) == 1 })
	ledger, err := OpenLedger(t.Context(), b.js, time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.RecordDone(t.Context(), note.ID, DoneRecord{Result: Result{"note_id": "7"}, Done: time.Now()}); err != nil {
		t.Fatal(err)
	}
	j, err := b.dlq.Redrive(t.Context(), dead[0].Seq, time.Now())
	if !errors.Is(err, ErrDoneSince) || j == nil || j.ID != note.ID {
		t.Fatalf("Redrive: %v, %v; want ErrDoneSince for %s", j, err, note.ID)
	}
	if left := b.dead(); len(left) != 0 {
		t.Errorf("%d dead letters left, want the letter removed", len(left))
	}
	b.waitRemoved(0)
	if n := calls(s.Requests(), "POST", "/v4/ticketing/notes", 0); n != 1 {
		t.Errorf("%d calls for the note, want only the first", n)
	}
}

// TestPoolGivesUpABare403AfterThreeTries: Comm100 answers both "permission
// denied" and "limit exceeded" with 403; one that says neither is tried
// three times, then the job goes to the DLQ instead of retrying for a day.
func TestPoolGivesUpABare403AfterThreeTries(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	var n atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(http.StatusForbidden)
	}))
	defer api.Close()
	s := &sim{Server: comm100test.New(comm100test.Config{}), url: api.URL}
	limiter, rt := b.client(s, 100, time.Minute)
	b.startPool(Config{}, rt, poolOpts{limiter: limiter})
	b.publish(ticketJob("forbidden"))
	var dead []DeadLetter
	waitFor(t, "the job in the DLQ", 20*time.Second, func() bool { dead = b.dead(); return len(dead) == 1 })
	if got := n.Load(); got != 3 {
		t.Errorf("Comm100 was called %d times, want 3", got)
	}
	if !strings.Contains(dead[0].Error, "permission denied") || len(dead[0].Attempts) != 3 {
		t.Errorf("dead letter: %q with %d attempts", dead[0].Error, len(dead[0].Attempts))
	}
}

// TestPoolRefusesABadRenderedParam: a {{ template }} that rendered a value
// of the wrong type is caught before the call and dead-lettered with the
// reason; Comm100 is not called.
func TestPoolRefusesABadRenderedParam(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	s := b.sim(comm100test.Config{}, 100, time.Minute)
	b.startPool(Config{}, s.rt, poolOpts{limiter: s.limiter})
	b.publish(&job.Job{ID: "e/r/0", EventID: "e", Rule: "r", Action: "comm100.ticket.note",
		Params: map[string]any{"ticket_id": "n/a", "text": "x"}, Created: time.Now().UTC()})
	var dead []DeadLetter
	waitFor(t, "the job in the DLQ", 10*time.Second, func() bool { dead = b.dead(); return len(dead) == 1 })
	if dead[0].Reason != ReasonInvalidParams || !strings.Contains(dead[0].Error, `param "ticket_id": want an integer id, got "n/a"`) {
		t.Errorf("dead letter: reason %q error %q", dead[0].Reason, dead[0].Error)
	}
	if n := len(s.Requests()); n != 0 {
		t.Errorf("Comm100 was called %d times, want 0", n)
	}
}

// TestPoolDryRunAndUnknownAction: a dry-run job is logged, not sent; a job
// of an action the catalogue does not have is dead-lettered.
func TestPoolDryRunAndUnknownAction(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	s := b.sim(comm100test.Config{}, 100, time.Minute)
	reg := prometheus.NewRegistry()
	var seen observed
	b.startPool(Config{}, s.rt, poolOpts{limiter: s.limiter, reg: reg, tune: seen.tune})
	dry := ticketJob("dry")
	dry.DryRun = true
	b.publish(dry, &job.Job{ID: "u/r/0", EventID: "u", Rule: "r", Action: "comm100.ticket.burn", Created: time.Now().UTC()})
	var dead []DeadLetter
	waitFor(t, "both jobs handled", 10*time.Second, func() bool {
		dead = b.dead()
		return len(dead) == 1 && jobsMetric(t, reg, dry.Action, "dry_run") == 1
	})
	if dead[0].Reason != ReasonUnknownAction {
		t.Errorf("dead letter reason: got %q", dead[0].Reason)
	}
	if n := len(s.Requests()); n != 0 {
		t.Errorf("Comm100 was called %d times, want 0", n)
	}
	if got := seen.list(); !slices.Equal(got, []string{dry.ID}) {
		t.Errorf("jobs observed as done: got %q, want only the dry run's %q", got, dry.ID)
	}
}

// TestPoolLogJobsAndTheSweeper: "log" jobs are carried out as they arrive,
// without the ledger, and once per process: a copy delivered again is
// acknowledged without a second run. Each writes one line, at its level,
// with the job's attributes. Finished jobs leave ACTIONS even while an
// earlier job, still failing, holds the consumer's ack floor back.
func TestPoolLogJobsAndTheSweeper(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	var failed atomic.Int32
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		failed.Add(1)
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer down.Close()
	reg := prometheus.NewRegistry()
	var seen observed
	var lines testenv.LogBuffer
	tune := func(p *Pool) {
		seen.tune(p)
		p.log = slog.New(slog.NewJSONHandler(&lines, nil))
	}
	b.startPool(Config{RetryInProcess: 100 * time.Millisecond}, b.runtime(nil), poolOpts{reg: reg, tune: tune})
	b.publish(&job.Job{ID: "down/r/0", EventID: "down", Rule: "r", Action: "http.request",
		Params: map[string]any{"url": down.URL}, Created: time.Now().UTC()})
	waitFor(t, "the failing call", 10*time.Second, func() bool { return failed.Load() > 0 })
	logJob := func(i int) *job.Job {
		id := fmt.Sprintf("log-%d", i)
		params := map[string]any{"message": "hello " + id}
		if i%2 == 1 {
			params["level"] = "WARN"
		}
		return &job.Job{ID: id + "/r/0", EventID: id, Rule: "r", Action: "log",
			Params: params, Created: time.Now().UTC()}
	}
	const n = 20
	for i := range n {
		b.publish(logJob(i))
	}
	// Below the logger's level: done, without a line.
	quiet := &job.Job{ID: "log-quiet/r/0", EventID: "log-quiet", Rule: "r", Action: "log",
		Params: map[string]any{"message": "not shown", "level": "debug"}, Created: time.Now().UTC()}
	b.publish(quiet)
	waitFor(t, "the log jobs", 10*time.Second, func() bool { return jobsMetric(t, reg, "log", "done") == n+1 })
	b.publishCopy(logJob(3), "log-3-again")
	waitFor(t, "the copy", 10*time.Second, func() bool { return jobsMetric(t, reg, "log", "duplicate") == 1 })
	if got := jobsMetric(t, reg, "log", "done"); got != n+1 {
		t.Errorf("log jobs done: got %d, want %d (the copy must not run again)", got, n+1)
	}
	byJob := map[string][]map[string]any{}
	for _, l := range jsonRecords(t, &lines) {
		if id, _ := l["job_id"].(string); strings.HasPrefix(id, "log-") {
			byJob[id] = append(byJob[id], l)
		}
	}
	if got := byJob[quiet.ID]; len(got) != 0 {
		t.Errorf("a debug log job wrote under an info logger: %v", got)
	}
	for i := range n {
		j := logJob(i)
		got := byJob[j.ID]
		if len(got) != 1 {
			t.Errorf("job %s wrote %d lines, want 1: %v", j.ID, len(got), got)
			continue
		}
		want := map[string]any{"msg": j.Params["message"], "level": "INFO", "event_id": j.EventID, "rule": "r", "action": "log"}
		if i%2 == 1 {
			want["level"] = "WARN"
		}
		for k, v := range want {
			if got[0][k] != v {
				t.Errorf("job %s's line: %s = %v, want %v", j.ID, k, got[0][k], v)
			}
		}
	}
	b.waitRemoved(1) // the failing job, waiting for its next delivery
	if got := seen.list(); len(got) != n+1 || slices.Contains(got, "down/r/0") {
		t.Errorf("jobs observed as done: got %q, want the %d log jobs once each", got, n+1)
	}
}

// TestPoolHonoursRetryAfterOfAnotherSystem: an http.request answered 503
// with Retry-After pauses that host's calls for that long, and not another
// host's.
func TestPoolHonoursRetryAfterOfAnotherSystem(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	var mu sync.Mutex
	var slowCalls []time.Time
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		slowCalls = append(slowCalls, time.Now())
		first := len(slowCalls) == 1
		mu.Unlock()
		if first {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer slow.Close()
	var otherAt atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherAt.Store(time.Now().UnixNano())
	}))
	defer other.Close()
	b.startPool(Config{}, b.runtime(nil), poolOpts{})
	call := func(id, url string) *job.Job {
		return &job.Job{ID: id + "/r/0", EventID: id, Rule: "r", Action: "http.request",
			Params: map[string]any{"url": url}, Created: time.Now().UTC()}
	}
	b.publish(call("first", slow.URL))
	waitFor(t, "the 503", 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(slowCalls) == 1 })
	b.publish(call("second", slow.URL), call("elsewhere", other.URL))
	waitFor(t, "all three jobs", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(slowCalls) == 3 && otherAt.Load() != 0 && b.idle()
	})
	mu.Lock()
	defer mu.Unlock()
	for i, at := range slowCalls[1:] {
		if gap := at.Sub(slowCalls[0]); gap < time.Second {
			t.Errorf("call %d to the paused host came %s after its Retry-After: 1, want at least 1s", i+2, gap)
		}
	}
	if o := time.Unix(0, otherAt.Load()); !o.Before(slowCalls[1]) {
		t.Errorf("the other host's call waited for the paused host (%s after the 503)", o.Sub(slowCalls[0]))
	}
}

// TestPoolKeepsTryingToRecordADoneJob: the done record cannot be stored for
// longer than the old code tried (about 1.2s); the pool holds the job and
// keeps trying, so a copy delivered later finds the record: one call.
func TestPoolKeepsTryingToRecordADoneJob(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	s := b.sim(comm100test.Config{}, 100, time.Minute)
	kv, err := OpenLedger(t.Context(), b.js, time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	ledger := &flakyLedger{Ledger: kv, failRecords: 20}
	b.startPool(Config{}, s.rt, poolOpts{limiter: s.limiter, ledger: ledger, tune: func(p *Pool) {
		p.recordRetry = Backoff{Base: 20 * time.Millisecond, Max: 80 * time.Millisecond, Jitter: -1}
	}})
	j := ticketJob("record")
	b.publish(j)
	waitFor(t, "the record", 20*time.Second, func() bool { return ledger.recorded.Load() == 1 && b.idle() })
	if _, ok, err := kv.Done(t.Context(), j.ID); !ok || err != nil {
		t.Fatalf("done record: %v %v", ok, err)
	}
	b.publishCopy(j, "after-the-blip")
	waitFor(t, "the copy", 10*time.Second, b.idle)
	if n := calls(s.Requests(), "POST", ticketsPath, 0); n != 1 {
		t.Errorf("Comm100 was called %d times, want 1", n)
	}
	if f := ledger.failed.Load(); f != 20 {
		t.Errorf("%d failed tries to record, want 20", f)
	}
}

// TestPoolRecordsADoneJobAcrossANATSRestart: NATS goes away while a call is
// in flight and comes back a little later; the job is recorded and
// acknowledged then, and nothing repeats the call.
func TestPoolRecordsADoneJobAcrossANATSRestart(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	kv, err := OpenLedger(t.Context(), b.js, time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	ledger := &flakyLedger{Ledger: kv}
	var n atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			b.stopServer() // while the call is in flight
		}
	}))
	defer api.Close()
	b.startPool(Config{}, b.runtime(nil), poolOpts{ledger: ledger, tune: func(p *Pool) {
		p.recordRetry = Backoff{Base: 20 * time.Millisecond, Max: 200 * time.Millisecond}
	}})
	j := &job.Job{ID: "blip/r/0", EventID: "blip", Rule: "r", Action: "http.request",
		Params: map[string]any{"url": api.URL}, Created: time.Now().UTC()}
	b.publish(j)
	waitFor(t, "tries to record while NATS is away", 20*time.Second, func() bool { return ledger.failed.Load() >= 3 })
	b.startServer()
	waitFor(t, "the record and the ack", 30*time.Second, func() bool { return ledger.recorded.Load() == 1 && b.idle() })
	b.publishCopy(j, "after-the-restart")
	waitFor(t, "the copy", 10*time.Second, b.idle)
	if got := n.Load(); got != 1 {
		t.Errorf("the call was made %d times, want 1", got)
	}
}

// TestPoolStopHandsBackWhatItHolds: a pool stopped while a job waits for the
// budget hands the job back at once. Its AckWait here is an hour, so only
// that hand-back can make the job available again now; the next pool runs it.
func TestPoolStopHandsBackWhatItHolds(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	s := b.sim(comm100test.Config{}, 100, time.Minute)
	s.limiter.Pause(time.Now().Add(time.Hour)) // the job waits for the budget
	reg := prometheus.NewRegistry()
	_, stop := b.startPool(Config{}, s.rt, poolOpts{limiter: s.limiter, reg: reg, tune: func(p *Pool) { p.ackWait = time.Hour }})
	j := ticketJob("held")
	b.publish(j)
	waitFor(t, "the job in hand", 10*time.Second, func() bool { return b.consumer(bus.Comm100Consumer).NumAckPending == 1 })
	stop()
	if got := jobsMetric(t, reg, j.Action, "handed_back"); got < 1 {
		t.Errorf("handed back: got %d, want it handed back", got)
	}
	cons, err := b.js.Consumer(t.Context(), bus.ActionsStream, bus.Comm100Consumer)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		t.Fatalf("the job is not available after the stop: %v", err)
	}
	// Workers whose wait for a job was still open as the pool stopped may
	// have received it and handed it back too.
	meta, _ := msg.Metadata()
	if meta.NumDelivered < 2 {
		t.Errorf("delivered %d times, want it handed back", meta.NumDelivered)
	}
	_ = msg.Nak()

	limiter, rt := b.client(s, 100, time.Minute)
	b.startPool(Config{}, rt, poolOpts{limiter: limiter})
	waitFor(t, "the next pool to run it", 10*time.Second, func() bool {
		return calls(s.Requests(), "POST", ticketsPath, http.StatusCreated) == 1 && b.idle()
	})
}

// TestPoolJobOfAVanishedPoolComesBack: a pool whose connection vanishes
// (the process was killed) cannot hand its job back; JetStream redelivers it
// after the pool's AckWait, which the pool keeps short.
func TestPoolJobOfAVanishedPoolComesBack(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	s := b.sim(comm100test.Config{}, 100, time.Minute)
	s.limiter.Pause(time.Now().Add(time.Hour))
	nc, js := b.connect()
	_, stop := b.startPool(Config{}, s.rt, poolOpts{js: js, limiter: s.limiter, tune: func(p *Pool) { p.ackWait = time.Second }})
	b.publish(ticketJob("vanished"))
	waitFor(t, "the job in hand", 10*time.Second, func() bool { return b.consumer(bus.Comm100Consumer).NumAckPending == 1 })
	nc.Close()
	cons, err := b.js.Consumer(t.Context(), bus.ActionsStream, bus.Comm100Consumer)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		t.Fatalf("the job did not come back: %v", err)
	}
	if meta, _ := msg.Metadata(); meta.NumDelivered != 2 {
		t.Errorf("delivered %d times, want 2", meta.NumDelivered)
	}
	_ = msg.Nak()
	stop()
}

// TestPoolHandsBackASecondDeliveryOfAJobInHand: a job delivered again while
// a worker still holds it (its progress report was late) is not carried
// out beside the first.
func TestPoolHandsBackASecondDeliveryOfAJobInHand(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	release := make(chan struct{})
	var n atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		<-release
	}))
	defer api.Close()
	defer close(release)
	reg := prometheus.NewRegistry()
	b.startPool(Config{}, b.runtime(nil), poolOpts{reg: reg, tune: func(p *Pool) {
		p.ackWait = 300 * time.Millisecond
	}})
	j := &job.Job{ID: "slow/r/0", EventID: "slow", Rule: "r", Action: "http.request",
		Params: map[string]any{"url": api.URL}, Created: time.Now().UTC()}
	b.publish(j)
	waitFor(t, "the call", 10*time.Second, func() bool { return n.Load() == 1 })
	b.publishCopy(j, "second-copy")
	waitFor(t, "the copy handed back and delivered again", 10*time.Second, func() bool {
		return b.consumer(bus.WorkerConsumer).NumRedelivered > 0
	})
	release <- struct{}{}
	waitFor(t, "both copies done", 10*time.Second, b.idle)
	if got := n.Load(); got != 1 {
		t.Errorf("the call was made %d times, want 1", got)
	}
}

// TestQueueSchedulesAndCancels: delayed jobs wait as schedules; a
// schedule.cancel job removes the jobs of its key, and the others fire when
// due. A copy of a cancelled job that comes later (its event evaluated again
// after the duplicate window) is found cancelled and not carried out.
func TestQueueSchedulesAndCancels(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	s := b.sim(comm100test.Config{}, 100, time.Minute)
	reg := prometheus.NewRegistry()
	b.startPool(Config{}, s.rt, poolOpts{limiter: s.limiter, reg: reg})
	now := time.Now()
	cancelled, kept := ticketJob("cancelled"), ticketJob("kept")
	// Far enough ahead for the cancel to go through first, even under -race.
	cancelled.Key, cancelled.RunAt = "chat-1", now.Add(3*time.Second)
	kept.Key, kept.RunAt = "chat-2", now.Add(3500*time.Millisecond)
	delayedLog := &job.Job{ID: "log/r/0", EventID: "log", Rule: "r", Action: "log", Key: "chat-1",
		RunAt: now.Add(3 * time.Second), Params: map[string]any{"message": "cancelled log"}, Created: now.UTC()}
	b.publish(cancelled, kept, delayedLog)
	if n, err := b.queue.Scheduled(t.Context()); err != nil || n != 3 {
		t.Fatalf("scheduled: got %d %v, want 3", n, err)
	}
	cancel := &job.Job{ID: "reply/r/0", EventID: "reply", Rule: "r", Action: "schedule.cancel",
		Params: map[string]any{"key": "chat-1"}, Created: now.UTC()}
	b.publish(cancel)
	waitFor(t, "the cancel", 10*time.Second, func() bool { return jobsMetric(t, reg, "schedule.cancel", "done") == 1 })
	if n, err := b.queue.Scheduled(t.Context()); err != nil || n != 1 {
		t.Fatalf("scheduled after the cancel: got %d %v, want 1", n, err)
	}
	if n, err := b.queue.Cancel(t.Context(), "chat-9", nil); err != nil || n != 0 {
		t.Fatalf("cancel of a key with no jobs: got %d %v, want 0", n, err)
	}
	// The cancelled jobs come back as a new message: past the window.
	b.publishCopy(cancelled, "stored-again")
	b.publishCopy(delayedLog, "log-stored-again")
	waitFor(t, "the kept job", 10*time.Second, func() bool {
		return calls(s.Requests(), "POST", ticketsPath, http.StatusCreated) == 1
	})
	waitFor(t, "both copies acknowledged", 10*time.Second, b.idle)
	reqs := s.Requests()
	if n := calls(reqs, "POST", ticketsPath, 0); n != 1 {
		t.Errorf("%d tickets made, want 1 (the kept job's)", n)
	}
	if !strings.Contains(string(reqs[0].Body), "ticket kept") {
		t.Errorf("the ticket made was %s, want the kept one", reqs[0].Body)
	}
	if reqs[0].Time.Before(kept.RunAt) {
		t.Errorf("the kept job fired %s early", kept.RunAt.Sub(reqs[0].Time))
	}
	if n := jobsMetric(t, reg, cancelled.Action, "cancelled"); n != 1 {
		t.Errorf("ticket copies found cancelled: %d, want 1", n)
	}
	if n := jobsMetric(t, reg, "log", "cancelled"); n != 1 {
		t.Errorf("log copies found cancelled: %d, want 1", n)
	}
	if n, err := b.queue.Scheduled(t.Context()); err != nil || n != 0 {
		t.Errorf("scheduled after both were due: got %d %v", n, err)
	}
}

// TestQueueRefusesAnUnencodableJob: a value JSON cannot hold is refused as
// such, so the rules can skip the job without holding back its event.
func TestQueueRefusesAnUnencodableJob(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	j := ticketJob("inf")
	j.Params["ratio"] = json.Number("x") // not a number JSON can write
	err := b.queue.Publish(context.Background(), j)
	if !errors.Is(err, ErrUnencodable) {
		t.Errorf("got %v, want ErrUnencodable", err)
	}
}

// jsonRecords decodes the lines a JSON handler wrote to l so far.
func jsonRecords(t *testing.T, l *testenv.LogBuffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(l.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, rec)
	}
	return out
}

// TestPoolOtherJobsPassJobsWaitingForTheBudget: with the Comm100 budget
// spent and more ticket jobs queued than there are workers, an http.request
// queued after them runs at once: Comm100 jobs waiting for the budget hold
// no worker of the other jobs, and no place before them in the queue.
func TestPoolOtherJobsPassJobsWaitingForTheBudget(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	// One call a minute: the first ticket spends it, the others wait.
	s := b.sim(comm100test.Config{}, 1, time.Minute)
	var hookAt atomic.Int64
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hookAt.Store(time.Now().UnixNano())
	}))
	defer hook.Close()
	b.startPool(Config{Workers: 2}, s.rt, poolOpts{limiter: s.limiter})
	for i := range 6 {
		b.publish(ticketJob("waits-" + string(rune('a'+i))))
	}
	waitFor(t, "the first ticket", 10*time.Second, func() bool {
		return calls(s.Requests(), "POST", ticketsPath, http.StatusCreated) == 1
	})
	queued := time.Now()
	b.publish(request("hook", hook.URL))
	waitFor(t, "the http.request queued behind the tickets", 10*time.Second, func() bool { return hookAt.Load() != 0 })
	t.Logf("http.request done %s after it was queued, behind 5 tickets waiting for the budget",
		time.Unix(0, hookAt.Load()).Sub(queued).Round(time.Millisecond))
	if n := calls(s.Requests(), "POST", ticketsPath, 0); n != 1 {
		t.Errorf("%d ticket calls, want 1 within the budget", n)
	}
}

// TestPoolRemovesNothingWhileTheDiskIsFull: while MayRemove says no (the
// store's disk is nearly full), finished jobs stay in ACTIONS; they are
// removed once it says yes.
func TestPoolRemovesNothingWhileTheDiskIsFull(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	var room atomic.Bool
	var seen observed
	b.startPool(Config{}, b.runtime(nil), poolOpts{tune: func(p *Pool) {
		seen.tune(p)
		p.sweepEvery = 50 * time.Millisecond
		p.MayRemove = room.Load
	}})
	for i := range 4 {
		id := "full-" + string(rune('a'+i))
		b.publish(logJob(id))
	}
	waitFor(t, "every job", 10*time.Second, func() bool { return len(seen.list()) == 4 && b.idle() })
	time.Sleep(time.Second) // many passes
	stream, err := b.js.Stream(t.Context(), bus.ActionsStream)
	if err != nil {
		t.Fatal(err)
	}
	if n := stream.CachedInfo().State.Msgs; n != 4 {
		t.Errorf("ACTIONS holds %d jobs while the disk is full, want the 4 finished ones kept", n)
	}
	room.Store(true)
	b.waitRemoved(0)
}

// TestPoolSweeperReadsThroughTheLeader: the sweeper reads the last job of a
// lane, which a lagging replica might not hold yet; with direct reads turned
// on (as an older replica does), the pool turns them off again at start.
func TestPoolSweeperReadsThroughTheLeader(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	s, err := b.js.Stream(t.Context(), bus.ActionsStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.AllowDirect = true
	if _, err := b.js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	p, _ := b.startPool(Config{}, b.runtime(nil), poolOpts{tune: func(p *Pool) { p.sweepEvery = 20 * time.Millisecond }})
	// The stream is opened before the consumers are made.
	waitFor(t, "the pool's consumers", 5*time.Second, func() bool { return b.consumer(bus.WorkerConsumer).Config.Durable != "" })
	if s, err = b.js.Stream(t.Context(), bus.ActionsStream); err != nil {
		t.Fatal(err)
	}
	if s.CachedInfo().Config.AllowDirect {
		t.Error("ACTIONS still takes direct reads after the pool started")
	}
	// Turned on again while the pool runs: the sweeper's reads of the
	// stream's state do not take them up.
	if _, err := b.js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // passes of the sweeper
	if p.sweeper.stream.CachedInfo().Config.AllowDirect {
		t.Error("the sweeper reads ACTIONS directly after direct reads were turned on again")
	}
}

// TestSweeperPurgesInSteps: a pass removes at most sweepMost sequences,
// counted from the first job still stored, not from the stream's first
// sequence, which an old schedule holds back, nor from where a sweeper
// that has just started stands.
func TestSweeperPurgesInSteps(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	var seen observed
	stored := func() uint64 {
		s, err := b.js.Stream(t.Context(), bus.ActionsStream)
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().State.Msgs
	}
	// A schedule an hour ahead holds the stream's first sequence back.
	publishDelayed(t, b)
	_, stop := b.startPool(Config{}, b.runtime(nil), poolOpts{tune: seen.tune})
	for i := range 10 {
		b.publish(logJob(fmt.Sprintf("early-%d", i)))
	}
	waitFor(t, "the early jobs", 10*time.Second, func() bool { return len(seen.list()) == 10 && b.idle() })
	b.waitRemoved(1)
	stop()

	// A new pool whose sweeper only runs when called.
	p, _ := b.startPool(Config{}, b.runtime(nil), poolOpts{tune: func(p *Pool) {
		seen.tune(p)
		p.sweepEvery = time.Hour
		p.sweepMost = 3
	}})
	for i := range 5 {
		b.publish(logJob(fmt.Sprintf("later-%d", i)))
	}
	waitFor(t, "the later jobs", 10*time.Second, func() bool { return len(seen.list()) == 15 && b.idle() })
	for _, want := range []uint64{1 + 2, 1} {
		if _, err := p.sweeper.sweep(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := stored(); got != want {
			t.Errorf("after a pass: %d messages in ACTIONS, want %d (the schedule and the jobs left)", got, want)
		}
	}
}

// TestPoolKeepsAttemptsWhileTheDiskIsFull: the attempts of a job that
// failed once and then succeeded are removed (a purge of their key) only
// while MayRemove says yes; otherwise they wait for the bucket's age limit.
func TestPoolKeepsAttemptsWhileTheDiskIsFull(t *testing.T) {
	t.Parallel()
	for _, room := range []bool{true, false} {
		t.Run(fmt.Sprintf("room %t", room), func(t *testing.T) {
			b := newBench(t)
			var calls atomic.Int32
			api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if calls.Add(1) == 1 {
					w.WriteHeader(http.StatusServiceUnavailable)
				}
			}))
			defer api.Close()
			p, _ := b.startPool(Config{RetryInProcess: time.Millisecond}, b.runtime(nil), poolOpts{tune: func(p *Pool) {
				p.policy.Redelivery = Backoff{Base: 50 * time.Millisecond, Max: 50 * time.Millisecond}
				p.MayRemove = func() bool { return room }
			}})
			j := request("flaky", api.URL)
			b.publish(j)
			waitFor(t, "the second call", 10*time.Second, func() bool { return calls.Load() == 2 && b.idle() })
			if !room {
				time.Sleep(200 * time.Millisecond) // a removal after the ack would have come by now
			}
			var left []Attempt
			waitFor(t, "the attempts as they should be", 5*time.Second, func() bool {
				a, err := p.ledger.Attempts(t.Context(), j.ID)
				left = a
				return err == nil && (len(a) == 0) == room
			})
			if room == (len(left) != 0) {
				t.Errorf("attempts left: %v", left)
			}
		})
	}
}

// TestPoolOneHostLeavesWorkersToOthers: http.request jobs to a host over
// its budget wait for it in at most their share of a lane's workers; a job
// to another host, queued behind them, runs at once.
func TestPoolOneHostLeavesWorkersToOthers(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	h := startTwoHosts(t, b)
	for i := range 4 {
		b.publish(request("slow-"+string(rune('a'+i)), h.slow.URL))
	}
	waitFor(t, "the first call to the slow host", 10*time.Second, func() bool { return h.slowCalls.Load() == 1 })
	// The first job acknowledged: the next one waits for the host's
	// budget, the others are parked.
	waitFor(t, "the other jobs in hand", 10*time.Second, func() bool {
		return b.consumer(bus.WorkerConsumer).NumAckPending == 3
	})
	queued := time.Now()
	b.publish(request("other", h.other.URL))
	waitFor(t, "the call to the other host", 10*time.Second, func() bool { return h.otherAt.Load() != 0 })
	t.Logf("other host called %s after its job was queued, behind 3 jobs waiting for their host's budget",
		time.Unix(0, h.otherAt.Load()).Sub(queued).Round(time.Millisecond))
	if n := h.slowCalls.Load(); n != 1 {
		t.Errorf("%d calls to the slow host, want 1 within its budget", n)
	}
	// One waits in the host's limiter, the other two are parked.
	if n := gauge(t, h.reg, "bot_jobs_parked"); n != 2 {
		t.Errorf("bot_jobs_parked = %v, want 2", n)
	}
}

// TestPoolParkedJobsRunInTurn: the jobs of a host that waits for its turn
// are each carried out once, the urgent one first; a stopping pool hands
// back those still parked at once.
func TestPoolParkedJobsRunInTurn(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	var mu sync.Mutex
	var order []string
	host := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		order = append(order, r.URL.Query().Get("job"))
		mu.Unlock()
	}))
	defer host.Close()
	rt := b.runtime(nil)
	rt.HTTP = NewHTTPCaller(nil, 1, 300*time.Millisecond, 5*time.Second)
	_, stop := b.startPool(Config{Workers: 2}, rt, poolOpts{})
	for i := range 4 {
		id := string(rune('a' + i))
		b.publish(request(id, host.URL+"?job="+id))
	}
	urgent := request("urgent", host.URL+"?job=urgent")
	urgent.Priority = "high"
	b.publish(urgent)
	waitFor(t, "every call", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(order) == 5
	})
	// A job of the host after the others starts as soon as its budget
	// allows: none of the host's turns is left taken.
	b.publish(request("after", host.URL+"?job=after"))
	waitFor(t, "the call of the job after", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(order) == 6
	})
	time.Sleep(500 * time.Millisecond) // a second run would have come by now
	mu.Lock()
	got := slices.Clone(order)
	mu.Unlock()
	// "a" is called first, "b" waits in the limiter and the rest are
	// parked when "urgent" arrives.
	if len(got) != 6 || slices.Index(got, "urgent") > 2 {
		t.Errorf("calls %v: want each job once, the urgent one among the first three", got)
	}

	stop()
	// Jobs in hand but not handed back would come back after the AckWait.
	long := func(p *Pool) { p.ackWait = time.Minute }
	rt.HTTP = NewHTTPCaller(nil, 1, time.Minute, 5*time.Second)
	_, stop = b.startPool(Config{Workers: 2}, rt, poolOpts{tune: long})
	for i := range 4 {
		id := "later-" + string(rune('a'+i))
		b.publish(request(id, host.URL+"?job="+id))
	}
	waitFor(t, "the first call of the second pool", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(order) == 7
	})
	// One job waits in the host's limiter, two are parked.
	waitFor(t, "every job in hand", 10*time.Second, func() bool {
		return b.consumer(bus.WorkerConsumer).NumAckPending == 3
	})
	stop()
	rt.HTTP = NewHTTPCaller(nil, 10, time.Minute, 5*time.Second)
	b.startPool(Config{Workers: 2}, rt, poolOpts{tune: long})
	waitFor(t, "the jobs handed back by the stopped pool", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(order) == 10
	})
}

// TestPoolTargetsShareTheWorkers: of 4 workers, jobs with a target take 3
// at most, 2 of one target; calls to one host go 2 at a time, to two hosts
// 3 at a time, and a job without a target still finds a worker.
func TestPoolTargetsShareTheWorkers(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	var now, most atomic.Int32
	var done atomic.Int32
	release := make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := now.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-release
		now.Add(-1)
		done.Add(1)
	})
	a, c := httptest.NewServer(slow), httptest.NewServer(slow)
	defer a.Close()
	defer c.Close()
	free := sync.OnceFunc(func() { close(release) })
	defer free() // before the servers close
	var seen observed
	b.startPool(Config{Workers: 4}, b.runtime(nil), poolOpts{tune: seen.tune})
	for i := range 4 {
		b.publish(request("a-"+string(rune('a'+i)), a.URL))
	}
	waitFor(t, "the calls to one host", 10*time.Second, func() bool { return now.Load() >= 2 })
	time.Sleep(200 * time.Millisecond) // a third call would have come by now
	if n := most.Load(); n != 2 {
		t.Errorf("%d calls to one host at once, want 2", n)
	}
	for i := range 2 {
		b.publish(request("c-"+string(rune('a'+i)), c.URL))
	}
	waitFor(t, "a call to the other host", 10*time.Second, func() bool { return now.Load() >= 3 })
	time.Sleep(200 * time.Millisecond)
	if n := most.Load(); n != 3 {
		t.Errorf("%d calls at once, want 3: a worker is kept for jobs without a target", n)
	}
	// An event.emit, without a target, takes the last worker.
	b.publish(&job.Job{ID: "emit/r/0", EventID: "emit", Rule: "r", Action: "event.emit",
		Params: map[string]any{"type": "test.emitted", "data": map[string]any{}}, Created: time.Now().UTC()})
	waitFor(t, "the event.emit job", 10*time.Second, func() bool { return slices.Contains(seen.list(), "emit/r/0") })
	free()
	waitFor(t, "every call", 10*time.Second, func() bool { return done.Load() == 6 })
}

// TestPoolParkedJobsLeaveTheFetchRoom: more jobs to a host over its budget
// than a lane fetches at once do not stop the lane's fetcher: a job to
// another host stored behind them is fetched and runs.
func TestPoolParkedJobsLeaveTheFetchRoom(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	h := startTwoHosts(t, b)
	const many = cheapInHand + 50
	for i := range many {
		b.publish(request(fmt.Sprint("slow-", i), h.slow.URL))
	}
	b.publish(request("other", h.other.URL))
	waitFor(t, "the call to the other host", 20*time.Second, func() bool { return h.otherAt.Load() != 0 })
	// The first job to the slow host is done, the next waits for its
	// budget, the others are parked.
	waitFor(t, "every job but two parked", 10*time.Second, func() bool { return gauge(t, h.reg, "bot_jobs_parked") == many-2 })
}

// twoHosts are two outside hosts and a pool that calls them.
type twoHosts struct {
	slow, other *httptest.Server
	slowCalls   atomic.Int32 // calls to slow
	otherAt     atomic.Int64 // when other was called, in Unix nanoseconds
	reg         *prometheus.Registry
}

// startTwoHosts starts the hosts, and a pool of 3 workers that may call
// each host once a minute: the first job to slow spends it, the others
// wait. Of the 3 workers, jobs with a target take 2 at most, 1 of one
// target.
func startTwoHosts(t *testing.T, b *bench) *twoHosts {
	h := &twoHosts{reg: prometheus.NewRegistry()}
	h.slow = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.slowCalls.Add(1) }))
	t.Cleanup(h.slow.Close)
	h.other = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.otherAt.Store(time.Now().UnixNano())
	}))
	t.Cleanup(h.other.Close)
	rt := b.runtime(nil)
	rt.HTTP = NewHTTPCaller(nil, 1, time.Minute, 5*time.Second)
	b.startPool(Config{Workers: 3}, rt, poolOpts{reg: h.reg})
	return h
}

// TestPoolJobsLeaveAFullLane: jobs to a host beyond what the lane holds
// (running, parked) leave it, stored again in ACTIONS to come back in the
// host's turn, instead of filling the lane: a job to another host stored
// behind them runs at once, the lane never parks more than its room, and
// every job to the busy host is carried out once.
func TestPoolJobsLeaveAFullLane(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	h, _ := startBusyHost(t, b, 32, poolOpts{})
	// More than the lane fetches at once: were they all kept, the job to
	// the other host would wait for most of them.
	const many = cheapInHand + 50
	for i := range many {
		b.publish(request(fmt.Sprint("busy-", i), h.busy.URL+"?job="+fmt.Sprint(i)))
	}
	b.publish(request("other", h.other.URL))
	mostParked := 0.0
	waitFor(t, "every job to the busy host carried out", 30*time.Second, func() bool {
		mostParked = max(mostParked, gauge(t, h.reg, "bot_jobs_parked"))
		return h.called() == many
	})
	time.Sleep(300 * time.Millisecond) // thirty turns of the host: no call comes twice
	for id, n := range h.calls() {
		if n != 1 {
			t.Errorf("job %s carried out %d times", id, n)
		}
	}
	if at := h.otherAt.Load(); at == 0 || at >= h.last.Load() {
		t.Errorf("the job to the other host ran at %d, not before the busy host's last job (%d)", at, h.last.Load())
	}
	left := jobsMetric(t, h.reg, "http.request", "rescheduled")
	if left == 0 || mostParked > 32 {
		t.Errorf("%d jobs left the lane, at most %g parked; want some left and at most 32 parked", left, mostParked)
	}
	t.Logf("%d of %d jobs left the lane for later, at most %g parked", left, many, mostParked)
}

// TestPoolJobsStayWhileNothingMayBeRemoved: a schedule that fires removes
// itself, so while the disk is nearly full the jobs past the park room
// stay in the lane, with their slots, as they did before they could leave.
func TestPoolJobsStayWhileNothingMayBeRemoved(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	h, _ := startBusyHost(t, b, 4, poolOpts{tune: func(p *Pool) { p.MayRemove = func() bool { return false } }})
	const many = 40
	for i := range many {
		b.publish(request(fmt.Sprint("busy-", i), h.busy.URL+"?job="+fmt.Sprint(i)))
	}
	mostParked := 0.0
	waitFor(t, "every job to the busy host carried out", 30*time.Second, func() bool {
		mostParked = max(mostParked, gauge(t, h.reg, "bot_jobs_parked"))
		return h.called() == many
	})
	if left := jobsMetric(t, h.reg, "http.request", "rescheduled"); left != 0 || mostParked <= 4 {
		t.Errorf("%d jobs left the lane, at most %g parked; want none left and more than 4 parked", left, mostParked)
	}
}

// busyHost is an outside host that the pool may call 100 times a second,
// and another host; startBusyHost starts them with a pool of 3 workers
// whose lane parks room jobs without a slot, and returns its stop.
type busyHost struct {
	busy, other *httptest.Server
	mu          sync.Mutex
	jobs        map[string]int // calls to busy, by its query's job
	last        atomic.Int64   // when busy was last called, in Unix nanoseconds
	otherAt     atomic.Int64   // when other was called, in Unix nanoseconds
	reg         *prometheus.Registry
}

func startBusyHost(t *testing.T, b *bench, room int, o poolOpts) (*busyHost, func()) {
	h := &busyHost{reg: prometheus.NewRegistry(), jobs: map[string]int{}}
	h.busy = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.jobs[r.URL.Query().Get("job")]++
		h.mu.Unlock()
		h.last.Store(time.Now().UnixNano())
	}))
	t.Cleanup(h.busy.Close)
	h.other = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.otherAt.Store(time.Now().UnixNano())
	}))
	t.Cleanup(h.other.Close)
	rt := b.runtime(nil)
	rt.HTTP = NewHTTPCaller(nil, 100, time.Second, 5*time.Second) // a call every 10 ms to each host
	o.reg = h.reg
	tune := o.tune
	o.tune = func(p *Pool) {
		p.parkRoom = room
		if tune != nil {
			tune(p)
		}
	}
	_, stop := b.startPool(Config{Workers: 3}, rt, o)
	return h, stop
}

func (h *busyHost) called() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.jobs)
}

func (h *busyHost) calls() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return maps.Clone(h.jobs)
}

// TestPoolJobBackFromLaterKeepsItsStory: a job stored again for later comes
// back with its body as it was, so its retries count from when it was first
// due, and with its deliveries so far, so the worker reads the attempts of
// its earlier deliveries: a job with two failed attempts, allowed three,
// fails once more and goes to the DLQ with all three, instead of starting
// its story again.
func TestPoolJobBackFromLaterKeepsItsStory(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	ctx := t.Context()
	var n atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer api.Close()
	j := request("story", api.URL)
	j.Key = "order-1"
	j.Created = time.Now().Add(-time.Hour).UTC() // its retries count from then
	b.publish(j)
	ledger, err := OpenLedger(ctx, b.js, time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	earlier := []Attempt{{Time: j.Created.Add(time.Second), Delivery: 1, Status: 500}, {Time: j.Created.Add(2 * time.Second), Delivery: 1, Status: 500}}
	if err := ledger.SaveAttempts(ctx, j.ID, earlier); err != nil {
		t.Fatal(err)
	}

	// Take the job in hand as a lane would, and send it out for later.
	stream, err := b.js.Stream(ctx, bus.ActionsStream)
	if err != nil {
		t.Fatal(err)
	}
	hand, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "hand", FilterSubject: job.RunSubjectPrefix + ">", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	// Its second delivery: the first one failed, and saved its attempts.
	msg, err := hand.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := msg.Nak(); err != nil {
		t.Fatal(err)
	}
	if msg, err = hand.Next(jetstream.FetchMaxWait(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Workers: 2, MaxAttempts: 3}
	rt := b.runtime(nil)
	reg := prometheus.NewRegistry()
	p, err := NewPool(cfg, b.js, NewCatalog(), rt, nil, b.log, reg)
	if err != nil {
		t.Fatal(err)
	}
	l := newLanes(cfg.Workers, 1, p.metrics.parked, time.Now)[1]
	l.slots <- struct{}{}
	p.reschedule(l, task{msg: msg, job: j, target: "api", backAt: time.Now().Add(300 * time.Millisecond)})
	p.leaving.Wait()
	// A schedule.cancel of its key leaves it alone: it is due already.
	if n, err := b.queue.Cancel(ctx, j.Key, nil); err != nil || n != 0 {
		t.Fatalf("cancel of the job's key removed %d jobs (%v)", n, err)
	}
	if len(l.slots) != 0 || jobsMetric(t, reg, "http.request", "rescheduled") != 1 {
		t.Fatalf("%d slots taken after the job left, %d jobs left", len(l.slots), jobsMetric(t, reg, "http.request", "rescheduled"))
	}
	waitFor(t, "the copy in hand acknowledged", 5*time.Second, func() bool {
		info, err := hand.Info(ctx)
		return err == nil && info.NumAckPending == 0
	})
	meta, _ := msg.Metadata()
	if err := stream.DeleteMsg(ctx, meta.Sequence.Stream); err != nil {
		t.Fatal(err)
	}
	if err := stream.DeleteConsumer(ctx, "hand"); err != nil {
		t.Fatal(err)
	}

	b.startPool(cfg, rt, poolOpts{ledger: ledger})
	var dead []DeadLetter
	waitFor(t, "the job in the DLQ", 20*time.Second, func() bool { dead = b.dead(); return len(dead) == 1 })
	if got := n.Load(); got != 1 {
		t.Errorf("the host was called %d times, want once", got)
	}
	if d := dead[0].Job; len(dead[0].Attempts) != 3 || !d.Created.Equal(j.Created) || !d.RunAt.IsZero() {
		t.Errorf("dead letter with %d attempts, created %s, run at %s; want 3, created %s, not delayed", len(dead[0].Attempts), d.Created, d.RunAt, j.Created)
	}
}

// laterJS is the pool's JetStream, with the publishes of the jobs that
// leave a lane held until release is closed, and the first failing ones
// failed.
type laterJS struct {
	jetstream.JetStream
	release chan struct{}
	calls   atomic.Int32 // publishes of jobs leaving
	held    atomic.Int32 // publishes waiting for release
	failing atomic.Int32 // publishes still to fail
}

func (l *laterJS) PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	if strings.HasPrefix(msg.Subject, laterSubjectPrefix) {
		l.calls.Add(1)
		l.held.Add(1)
		<-l.release
		l.held.Add(-1)
		if l.failing.Add(-1) >= 0 {
			return nil, errors.New("no responders")
		}
	}
	return l.JetStream.PublishMsg(ctx, msg, opts...)
}

// TestPoolJobsLeaveWithoutHoldingTheLane: the jobs leaving a full lane are
// stored without the fetcher waiting for them, so a job to another host
// runs while their publishes hang; a stopping pool waits for them; and one
// that cannot be stored is handed back, not acknowledged: every job runs
// once, the next pool running those handed back.
func TestPoolJobsLeaveWithoutHoldingTheLane(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	js := &laterJS{JetStream: b.js, release: make(chan struct{})}
	js.failing.Store(5)
	h, stop := startBusyHost(t, b, 4, poolOpts{js: js, tune: func(p *Pool) {
		p.fetchWait = 100 * time.Millisecond // so that it stops at once
		p.ackWait = time.Minute              // no publish times out while held
	}})
	release := sync.OnceFunc(func() { close(js.release) })
	t.Cleanup(release) // before the pool stops, if the test fails
	const many = 20
	for i := range many {
		b.publish(request(fmt.Sprint("busy-", i), h.busy.URL+"?job="+fmt.Sprint(i)))
	}
	waitFor(t, "jobs leaving the lane", 10*time.Second, func() bool { return js.held.Load() >= 5 })
	b.publish(request("other", h.other.URL))
	waitFor(t, "the job to the other host, while the jobs leaving hang", 10*time.Second, func() bool { return h.otherAt.Load() != 0 })

	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("the pool stopped before the jobs leaving it were stored")
	case <-time.After(time.Second):
	}
	release()
	<-stopped
	if n, left := js.calls.Load(), jobsMetric(t, h.reg, "http.request", "rescheduled"); left != int(n)-5 {
		t.Fatalf("%d jobs left the lane of %d that tried, 5 of which failed", left, n)
	}

	rt := b.runtime(nil)
	rt.HTTP = NewHTTPCaller(nil, 100, time.Second, 5*time.Second)
	b.startPool(Config{Workers: 3}, rt, poolOpts{})
	waitFor(t, "every job to the busy host carried out", 30*time.Second, func() bool { return h.called() == many })
	time.Sleep(300 * time.Millisecond)
	for id, n := range h.calls() {
		if n != 1 {
			t.Errorf("job %s carried out %d times", id, n)
		}
	}
}

// TestPoolOtherJobsPassABurstToOneHost: with the lane's own park room, an
// event.emit stored behind 2,000 jobs to a host allowed 60 calls a minute
// runs at once: the jobs past the room left the lane to wait in ACTIONS
// (before, it waited until the host had worked the lane's backlog down,
// some twelve minutes).
func TestPoolOtherJobsPassABurstToOneHost(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	crm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(crm.Close)
	reg := prometheus.NewRegistry()
	rt := b.runtime(nil)
	rt.HTTP = NewHTTPCaller(nil, 60, time.Minute, 5*time.Second)
	var seen observed
	b.startPool(Config{}, rt, poolOpts{reg: reg, tune: seen.tune})
	const many = 2000
	for i := range many {
		b.publish(request(fmt.Sprint("crm-", i), crm.URL))
	}
	b.publish(&job.Job{ID: "emit/r/0", EventID: "emit", Rule: "r", Action: "event.emit",
		Params: map[string]any{"type": "test.emitted", "data": map[string]any{}}, Created: time.Now().UTC()})
	waitFor(t, "the event.emit job", 20*time.Second, func() bool { return slices.Contains(seen.list(), "emit/r/0") })
	if parked, left := gauge(t, reg, "bot_jobs_parked"), jobsMetric(t, reg, "http.request", "rescheduled"); parked > parkInHand || left == 0 {
		t.Errorf("%g jobs parked, %d left the lane; want at most %d parked, some left", parked, left, parkInHand)
	}
}

// TestPoolReplicasDoNotFillTheLaneBetweenThem: two replicas share the
// lane's consumer; a burst to a host allowed one call a minute, spread over
// both, and an event.emit stored behind it still runs at once: a replica's
// own bounds decide what it holds, and its jobs leave when its room is
// full, not a limit of the consumer's that both spend (with one lane's
// worth between them, neither room would be full).
func TestPoolReplicasDoNotFillTheLaneBetweenThem(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	crm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(crm.Close)
	rt := b.runtime(nil)
	rt.HTTP = NewHTTPCaller(nil, 1, time.Minute, 5*time.Second)
	var seen observed
	// Rooms larger than half of what one replica holds.
	tune := func(p *Pool) { p.parkRoom = 400; seen.tune(p) }
	b.startPool(Config{Workers: 3}, rt, poolOpts{tune: tune})
	b.startPool(Config{Workers: 3}, rt, poolOpts{tune: tune})
	for i := range 1000 {
		b.publish(request(fmt.Sprint("crm-", i), crm.URL))
	}
	b.publish(&job.Job{ID: "emit/r/0", EventID: "emit", Rule: "r", Action: "event.emit",
		Params: map[string]any{"type": "test.emitted", "data": map[string]any{}}, Created: time.Now().UTC()})
	waitFor(t, "the event.emit job", 20*time.Second, func() bool { return slices.Contains(seen.list(), "emit/r/0") })
}

// TestPoolJobsHandedBackDoNotFillTheLane: jobs to a host that refuses
// every call are handed back to wait out their redelivery delay, which
// JetStream counts as pending on the consumer; more of them than the lane
// holds do not stop an event.emit stored behind them.
func TestPoolJobsHandedBackDoNotFillTheLane(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	down.Close() // refuses every call
	rt := b.runtime(nil)
	rt.HTTP = NewHTTPCaller(nil, 10000, time.Second, 5*time.Second)
	var seen observed
	b.startPool(Config{Workers: 3, RetryInProcess: time.Millisecond}, rt, poolOpts{tune: func(p *Pool) { p.parkRoom = 16; seen.tune(p) }})
	const many = 3 + cheapInHand + 16 + 100 // more than the lane holds
	for i := range many {
		b.publish(request(fmt.Sprint("down-", i), down.URL))
	}
	// More jobs wait out their delay, pending on the consumer, than the
	// lane holds.
	waitFor(t, "jobs handed back", 30*time.Second, func() bool {
		return b.consumer(bus.WorkerConsumer).NumAckPending >= 3+cheapInHand+16
	})
	b.publish(&job.Job{ID: "emit/r/0", EventID: "emit", Rule: "r", Action: "event.emit",
		Params: map[string]any{"type": "test.emitted", "data": map[string]any{}}, Created: time.Now().UTC()})
	waitFor(t, "the event.emit job", 3*time.Second, func() bool { return slices.Contains(seen.list(), "emit/r/0") })
}

package actions

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/comm100bot/bot/internal/bus"
)

// memLedger is a Ledger in memory, to test the pool without the KV buckets.
type memLedger struct {
	mu       sync.Mutex
	done     map[string]DoneRecord
	attempts map[string][]Attempt
}

func newMemLedger() *memLedger {
	return &memLedger{done: map[string]DoneRecord{}, attempts: map[string][]Attempt{}}
}

func (m *memLedger) Done(_ context.Context, id string) (DoneRecord, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.done[id]
	return r, ok, nil
}

func (m *memLedger) RecordDone(_ context.Context, id string, r DoneRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.done[id]; ok && (r.Cancelled || r.Dead) {
		return nil
	}
	m.done[id] = r
	return nil
}

func (m *memLedger) Attempts(_ context.Context, id string) ([]Attempt, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.attempts[id], nil
}

func (m *memLedger) SaveAttempts(_ context.Context, id string, a []Attempt) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.attempts[id] = a
	return nil
}

func (m *memLedger) Forget(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.attempts, id)
	return nil
}

// flakyLedger fails the first failRecords RecordDone calls, and counts the
// calls that failed, whether it made them fail or the ledger below did.
type flakyLedger struct {
	Ledger
	failRecords int32
	failed      atomic.Int32
	recorded    atomic.Int32
}

var errLedgerDown = errors.New("ledger unavailable")

func (f *flakyLedger) RecordDone(ctx context.Context, id string, r DoneRecord) error {
	if f.failed.Load() < f.failRecords {
		f.failed.Add(1)
		return errLedgerDown
	}
	if err := f.Ledger.RecordDone(ctx, id, r); err != nil {
		f.failed.Add(1)
		return err
	}
	f.recorded.Add(1)
	return nil
}

// TestKVLedger runs the real ledger through a job's life on an embedded
// JetStream.
func TestKVLedger(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	ctx := t.Context()
	l, err := OpenLedger(ctx, b.js, time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := l.Done(ctx, "e/r/0"); ok || err != nil {
		t.Fatalf("Done of an unknown job: got %v %v", ok, err)
	}
	if a, err := l.Attempts(ctx, "e/r/0"); a != nil || err != nil {
		t.Fatalf("Attempts of an unknown job: got %v %v", a, err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	story := make([]Attempt, 80)
	for i := range story {
		story[i] = Attempt{Time: now.Add(time.Duration(i) * time.Second), Delivery: uint64(i/5 + 1), Status: 503, Error: "down"}
	}
	if err := l.SaveAttempts(ctx, "e/r/0", story); err != nil {
		t.Fatal(err)
	}
	got, err := l.Attempts(ctx, "e/r/0")
	if err != nil {
		t.Fatal(err)
	}
	gap := Attempt{Time: story[keepAttempts/2].Time, Delivery: story[keepAttempts/2].Delivery, Omitted: len(story) - keepAttempts + 1}
	want := append(append(append([]Attempt{}, story[:keepAttempts/2]...), gap), story[len(story)-keepAttempts/2+1:]...)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("a long story keeps its first and latest attempts and the count of those between (-want +got):\n%s", diff)
	}
	if countAttempts(got) != len(story) {
		t.Errorf("the stored story counts %d attempts, want %d", countAttempts(got), len(story))
	}
	if err := l.RecordDone(ctx, "e/r/0", DoneRecord{Result: Result{"ticket_id": "1001"}, Done: now}); err != nil {
		t.Fatal(err)
	}
	rec, ok, err := l.Done(ctx, "e/r/0")
	if err != nil || !ok || rec.Result["ticket_id"] != "1001" || !rec.Done.Equal(now) {
		t.Errorf("Done: got %+v %v %v", rec, ok, err)
	}
	// A cancel that comes after the job ran leaves its result.
	if err := l.RecordDone(ctx, "e/r/0", DoneRecord{Done: now.Add(time.Second), Cancelled: true}); err != nil {
		t.Fatal(err)
	}
	if rec, ok, err := l.Done(ctx, "e/r/0"); err != nil || !ok || rec.Cancelled || rec.Result["ticket_id"] != "1001" {
		t.Errorf("Done after a late cancel: got %+v %v %v, want the job's result", rec, ok, err)
	}
	if err := l.RecordDone(ctx, "e/r/1", DoneRecord{Done: now, Cancelled: true}); err != nil {
		t.Fatal(err)
	}
	if rec, ok, err := l.Done(ctx, "e/r/1"); err != nil || !ok || !rec.Cancelled {
		t.Errorf("Done of a cancelled job: got %+v %v %v", rec, ok, err)
	}
	// A job that died: its record says so, and never replaces a success.
	if err := l.RecordDone(ctx, "e/r/0", DoneRecord{Done: now.Add(2 * time.Second), Dead: true}); err != nil {
		t.Fatal(err)
	}
	if rec, ok, err := l.Done(ctx, "e/r/0"); err != nil || !ok || rec.Dead || rec.Result["ticket_id"] != "1001" {
		t.Errorf("Done after a late death: got %+v %v %v, want the job's result", rec, ok, err)
	}
	if err := l.RecordDone(ctx, "e/r/2", DoneRecord{Done: now, Dead: true}); err != nil {
		t.Fatal(err)
	}
	if rec, ok, err := l.Done(ctx, "e/r/2"); err != nil || !ok || !rec.Dead {
		t.Errorf("Done of a dead job: got %+v %v %v", rec, ok, err)
	}
	if err := l.Forget(ctx, "e/r/0"); err != nil {
		t.Fatal(err)
	}
	if a, err := l.Attempts(ctx, "e/r/0"); len(a) != 0 || err != nil {
		t.Errorf("Attempts after Forget: got %v %v", a, err)
	}
}

// TestLedgerAndConsumerTakeReplicasFromConfig: the buckets and the consumer
// are created with the configured replicas. A single server refuses more
// than one, which shows the value reaches the server.
func TestLedgerAndConsumerTakeReplicasFromConfig(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	if _, err := OpenLedger(t.Context(), b.js, time.Hour, 3); err == nil {
		t.Error("a ledger of 3 replicas on a single server was accepted")
	}
	p, err := NewPool(Config{Replicas: 3}, b.js, NewCatalog(), b.runtime(nil), nil, b.log, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.ledger = newMemLedger()
	if err := p.Run(t.Context()); err == nil {
		t.Error("a consumer of 3 replicas on a single server was accepted")
	}

	_, stop := b.startPool(Config{}, b.runtime(nil), poolOpts{})
	waitFor(t, "the consumer", 5*time.Second, func() bool {
		_, err := b.js.Consumer(t.Context(), "ACTIONS", bus.WorkerConsumer)
		return err == nil
	})
	stop()
	// The pool bounds what it holds; the consumers do not (see
	// Pool.consumer).
	for _, c := range []struct{ name, filter string }{{bus.WorkerConsumer, "actions.run.>"}, {bus.Comm100Consumer, "actions.run.comm100.>"}} {
		cfg := b.consumer(c.name).Config
		if cfg.FilterSubject != c.filter || cfg.Replicas != 1 || cfg.AckWait != 5*time.Second || cfg.MaxAckPending != -1 {
			t.Errorf("consumer %s: filter %q, replicas %d, ack wait %s, max ack pending %d; want %q, 1, 5s (short, see doc.go), -1 (no limit)",
				c.name, cfg.FilterSubject, cfg.Replicas, cfg.AckWait, cfg.MaxAckPending, c.filter)
		}
	}
	for _, name := range []string{"jobs_done", "jobs_attempts"} {
		st, err := b.js.Stream(t.Context(), "KV_"+name)
		if err != nil {
			t.Fatal(err)
		}
		if r := st.CachedInfo().Config.Replicas; r != 1 {
			t.Errorf("bucket %s: %d replicas, want 1", name, r)
		}
	}
}

// A long story keeps its first and latest attempts and the count of all:
// dispatch.max_attempts above what the story keeps is still reached.
func TestShortenedStoryKeepsTheCount(t *testing.T) {
	start := time.Date(2026, 3, 9, 12, 0, 0, 0, time.UTC)
	var story []Attempt
	made := 0
	add := func(n int) {
		for range n {
			story = append(story, Attempt{Time: start.Add(time.Duration(made) * time.Second), Delivery: uint64(1 + made/8), Status: 503})
			made++
			story = shorten(story)
		}
	}
	add(120)
	if len(story) != keepAttempts || countAttempts(story) != 120 {
		t.Fatalf("after 120 attempts: %d entries counting %d, want %d counting 120", len(story), countAttempts(story), keepAttempts)
	}
	if story[0].Time != start || story[len(story)-1].Time != start.Add(119*time.Second) {
		t.Errorf("the first or the latest attempt was dropped: %v ... %v", story[0].Time, story[len(story)-1].Time)
	}
	add(30)
	if countAttempts(story) != 150 {
		t.Errorf("after 150 attempts: counting %d", countAttempts(story))
	}
	p := testPolicy()
	p.MaxAttempts = 100
	now := start.Add(200 * time.Second)
	err := apiErr(503, "", 0)
	d := p.Decide(Facts{Now: now, Due: start, Delivery: 20, Started: now, Err: err, Comm100: true, History: story})
	if d.Verdict != Dead || d.Reason != ReasonExhausted {
		t.Errorf("max_attempts 100 after 150 attempts: got %s (%s), want dead, retries exhausted", d.Verdict, d.Reason)
	}
}

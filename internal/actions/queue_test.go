package actions

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/job"
)

// TestQueueStoresAJobOnce: a job published again (its event delivered to the
// rules again) is refused while the first copy is in ACTIONS, however long
// after the first it comes: a copy under another message id (past the
// stream's short duplicate window) too, sent alone, with PublishAsync, or
// inside an atomic batch, whose other jobs are stored. The refusal counts as
// stored (AlreadyStored). Once the job is removed, a copy is stored, and it
// is the pool's ledger that stops it. The message id is a short digest, and
// the job still carries its own id.
func TestQueueStoresAJobOnce(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	ctx := t.Context()
	eventID := "chat.ended:8f14e45f-ceea-4e7a-9b21-3d5c6a7b8c90"
	mk := func(i int) *job.Job {
		return &job.Job{ID: job.ID(eventID, "follow-up-after-a-long-chat", i), EventID: eventID,
			Rule: "follow-up-after-a-long-chat", Action: "log", Created: time.Now()}
	}
	first, err := b.js.PublishMsg(ctx, mustJobMsg(t, mk(0)))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.queue.Publish(ctx, mk(0)); err != nil {
		t.Fatalf("the job again: %v, want it taken as stored", err)
	}
	late := mustJobMsg(t, mk(0))
	late.Header.Set(jetstream.MsgIDHeader, "past-the-window")
	if _, err := b.js.PublishMsg(ctx, late); !AlreadyStored(err) {
		t.Fatalf("a copy under another message id: %v, want the stream to refuse it as stored", err)
	}
	f, err := b.queue.PublishAsync(mk(0))
	if err != nil {
		t.Fatal(err)
	}
	if err := awaitFuture(f); !AlreadyStored(err) {
		t.Fatalf("the job again, asynchronously: %v, want the stream to refuse it as stored", err)
	}

	// In a batch large enough to go atomic: the refused batch is sent
	// again in parts, and every other job is stored.
	batched := &Queue{JS: b.js, Batcher: bus.NewBatcher(b.js, bus.ActionsStream)}
	var futures []jetstream.PubAckFuture
	for i := range 40 {
		f, err := batched.PublishAsync(mk((i + 20) % 40)) // mk(0), stored already, in the middle
		if err != nil {
			t.Fatal(err)
		}
		futures = append(futures, f)
	}
	for i, f := range futures {
		err := awaitFuture(f)
		if i == 20 && !AlreadyStored(err) {
			t.Errorf("the stored job among others: %v, want it refused as stored", err)
		}
		if i != 20 && err != nil {
			t.Errorf("job %d: %v", (i+20)%40, err)
		}
	}

	s, err := b.js.Stream(ctx, bus.ActionsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 40 {
		t.Errorf("ACTIONS holds %d jobs, want 40 (each once)", info.State.Msgs)
	}
	if got, want := info.Config.Duplicates, bus.MsgIDWindow; got != want {
		t.Errorf("ACTIONS duplicate window %s, want %s", got, want)
	}
	stored, err := s.GetMsg(ctx, first.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if id := stored.Header.Get(jetstream.MsgIDHeader); len(id) != 20 {
		t.Errorf("Nats-Msg-Id %q: want the 20-character digest", id)
	}
	var j job.Job
	if err := j.UnmarshalJSON(stored.Data); err != nil {
		t.Fatal(err)
	}
	if j.ID != mk(0).ID || stored.Subject != mk(0).RunSubject() {
		t.Errorf("stored job %q on %q, want %q on %q", j.ID, stored.Subject, mk(0).ID, mk(0).RunSubject())
	}

	// Removed (finished and swept): a copy is stored again.
	if err := s.DeleteMsg(ctx, first.Sequence); err != nil {
		t.Fatal(err)
	}
	again := mustJobMsg(t, mk(0))
	again.Header.Set(jetstream.MsgIDHeader, "after-removal")
	if _, err := b.js.PublishMsg(ctx, again); err != nil {
		t.Errorf("a copy after the job was removed: %v, want it stored", err)
	}
}

// publishDelayed queues a log job an hour ahead, under key chat-1.
func publishDelayed(t *testing.T, b *bench) *job.Job {
	t.Helper()
	j := &job.Job{ID: "e/r/0", EventID: "e", Rule: "r", Action: "log", Key: "chat-1",
		RunAt: time.Now().Add(time.Hour), Created: time.Now()}
	if err := b.queue.Publish(t.Context(), j); err != nil {
		t.Fatal(err)
	}
	return j
}

// TestQueueStoresADelayedJobOnce: a copy of a delayed job is refused while
// its schedule waits.
func TestQueueStoresADelayedJobOnce(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	ctx := t.Context()
	j := publishDelayed(t, b)
	late := mustJobMsg(t, j)
	late.Header.Set(jetstream.MsgIDHeader, "past-the-window")
	if _, err := b.js.PublishMsg(ctx, late); !AlreadyStored(err) {
		t.Fatalf("a copy of a waiting delayed job: %v, want the stream to refuse it as stored", err)
	}
	if n, err := b.queue.Scheduled(ctx); err != nil || n != 1 {
		t.Errorf("scheduled: %d %v, want 1", n, err)
	}
}

// TestCancelWaitsForRoom: while the store's disk is nearly full, Cancel
// records the delayed job as cancelled but removes nothing, and fails with
// an error the pool retries; with room, it removes the job.
func TestCancelWaitsForRoom(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	ctx := t.Context()
	publishDelayed(t, b)
	var room atomic.Bool
	q := &Queue{JS: b.js, MayRemove: room.Load}
	var settled []string
	settle := func(_ context.Context, id string) error { settled = append(settled, id); return nil }
	if n, err := q.Cancel(ctx, "chat-1", settle); err == nil || !Retryable(err) || n != 0 {
		t.Errorf("cancel on a full disk: %d, %v; want a retryable error", n, err)
	}
	if len(settled) != 1 {
		t.Errorf("cancel on a full disk recorded %v, want the job recorded as cancelled (it must not run if it fires)", settled)
	}
	if n, err := q.Scheduled(ctx); err != nil || n != 1 {
		t.Errorf("scheduled after the refused cancel: %d %v, want 1", n, err)
	}
	room.Store(true)
	if n, err := q.Cancel(ctx, "chat-1", nil); err != nil || n != 1 {
		t.Errorf("cancel with room: %d, %v; want 1", n, err)
	}
}

// TestAlreadyStored: only the refusal that names a stored message counts.
func TestAlreadyStored(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamWrongLastSequence, Description: "wrong last sequence: 12"}, true},
		{fmt.Errorf("publish job x: %w", &jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamWrongLastSequence, Description: "wrong last sequence: 3"}), true},
		// The stream could not read the subject.
		{&jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamWrongLastSequence, Description: "wrong last sequence: 0"}, false},
		// A message on the subject is still being replicated: it may fail.
		{&jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamWrongLastSequenceConstant, Description: "wrong last sequence"}, false},
		{&jetstream.APIError{Code: 503, ErrorCode: 10077, Description: "maximum messages exceeded"}, false},
		{errors.New("wrong last sequence: 12"), false},
		{nil, false},
	} {
		if got := AlreadyStored(c.err); got != c.want {
			t.Errorf("AlreadyStored(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// awaitFuture waits for a PubAck future's outcome.
func awaitFuture(f jetstream.PubAckFuture) error {
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		return err
	case <-time.After(10 * time.Second):
		return errors.New("no PubAck")
	}
}

func mustJobMsg(t *testing.T, j *job.Job) *nats.Msg {
	t.Helper()
	msg, err := jobMsg(j)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// TestCancelReadsThroughTheLeader: a stream an older replica set up (direct
// reads on, answered by any replica, possibly one behind) loses its direct
// reads before Cancel reads the schedules, and the schedules are cancelled.
func TestCancelReadsThroughTheLeader(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	ctx := t.Context()
	s, err := b.js.Stream(ctx, bus.ActionsStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.AllowDirect = true
	if _, err := b.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	j := publishDelayed(t, b)
	var settled []string
	n, err := b.queue.Cancel(ctx, "chat-1", func(_ context.Context, id string) error {
		settled = append(settled, id)
		return nil
	})
	if err != nil || n != 1 || len(settled) != 1 || settled[0] != j.ID {
		t.Fatalf("Cancel: got %d %v, settled %v; want 1 and %s", n, err, settled, j.ID)
	}
	if s, err = b.js.Stream(ctx, bus.ActionsStream); err != nil {
		t.Fatal(err)
	}
	if s.CachedInfo().Config.AllowDirect {
		t.Error("ACTIONS still takes direct reads after a cancel")
	}
	if left, err := b.queue.Scheduled(ctx); err != nil || left != 0 {
		t.Errorf("scheduled after the cancel: %d %v, want 0", left, err)
	}
}

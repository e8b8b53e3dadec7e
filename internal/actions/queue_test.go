package actions

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/job"
)

// TestQueueStoresAJobOnce: a job published again (its event delivered to the
// rules again) is dropped by ACTIONS, whose duplicate window is two of the
// rules' AckWaits; the id the stream remembers is a short digest, and the job
// still carries its own id.
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
		t.Fatal(err)
	}
	f, err := b.queue.PublishAsync(mk(0))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ack := <-f.Ok():
		if !ack.Duplicate || ack.Sequence != first.Sequence {
			t.Errorf("the job again: %+v, want a duplicate of seq %d", ack, first.Sequence)
		}
	case err := <-f.Err():
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatal("no PubAck")
	}
	if err := b.queue.Publish(ctx, mk(1)); err != nil {
		t.Fatal(err)
	}

	s, err := b.js.Stream(ctx, bus.ActionsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Errorf("ACTIONS holds %d jobs, want 2 (the second action's, and the first's once)", info.State.Msgs)
	}
	if got, want := info.Config.Duplicates, 2*time.Minute; got != want {
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
	if j.ID != mk(0).ID {
		t.Errorf("stored job id %q, want %q", j.ID, mk(0).ID)
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
	j := &job.Job{ID: "e/r/0", EventID: "e", Rule: "r", Action: "log", Key: "chat-1",
		RunAt: time.Now().Add(time.Hour), Created: time.Now()}
	if err := b.queue.Publish(ctx, j); err != nil {
		t.Fatal(err)
	}
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

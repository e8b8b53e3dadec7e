package bus

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func eventMsg(id string) *nats.Msg {
	m := &nats.Msg{Subject: "events.test.order.paid", Data: []byte(`{"id":"` + id + `"}`), Header: nats.Header{}}
	m.Header.Set(jetstream.MsgIDHeader, id)
	return m
}

// await returns the PubAck of each future, failing the test on an error.
func await(t *testing.T, futures []jetstream.PubAckFuture) []*jetstream.PubAck {
	t.Helper()
	acks := make([]*jetstream.PubAck, len(futures))
	for i, f := range futures {
		select {
		case acks[i] = <-f.Ok():
		case err := <-f.Err():
			t.Fatalf("message %d: %v", i, err)
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d: no PubAck", i)
		}
	}
	return acks
}

// storedIDs reads the message ids of the stream, in stream order.
func storedIDs(t *testing.T, js jetstream.JetStream, stream string) []string {
	t.Helper()
	s, err := js.Stream(t.Context(), stream)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for seq := uint64(1); seq <= s.CachedInfo().State.LastSeq; seq++ {
		m, err := s.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
		ids = append(ids, m.Header.Get(jetstream.MsgIDHeader))
	}
	return ids
}

func TestBatcherCommitsTogetherInOrder(t *testing.T) {
	b, _ := openBus(t, Config{StoreDir: t.TempDir(), Sync: SyncAlways}, false)
	if !b.Batches() {
		t.Fatal("an embedded server that syncs always should batch")
	}
	batcher := NewBatcher(b.JS, EventsStream, b.Batches())
	const n = 1000
	futures := make([]jetstream.PubAckFuture, n)
	for i := range n {
		futures[i] = batcher.PublishAsync(eventMsg(fmt.Sprintf("e%d", i)))
	}
	acks := await(t, futures)
	ids := storedIDs(t, b.JS, EventsStream)
	if len(ids) != n {
		t.Fatalf("%d messages stored, want %d", len(ids), n)
	}
	for i, ack := range acks {
		if want := fmt.Sprintf("e%d", i); ids[ack.Sequence-1] != want || ids[i] != want {
			t.Fatalf("message %d: PubAck says seq %d, which holds %s; seq %d holds %s", i, ack.Sequence, ids[ack.Sequence-1], i+1, ids[i])
		}
	}
	if batcher.committed.Load() == 0 {
		t.Fatalf("1,000 messages sent at once went without a single atomic batch")
	}
	if r := batcher.refused.Load(); r != 0 {
		t.Fatalf("%d batches refused", r)
	}
}

func TestBatcherBatchWithADuplicateGoesOneByOne(t *testing.T) {
	b, _ := openBus(t, Config{StoreDir: t.TempDir(), Sync: SyncAlways}, false)
	batcher := NewBatcher(b.JS, EventsStream, true)
	if _, err := batcher.Publish(t.Context(), eventMsg("e3")); err != nil {
		t.Fatal(err)
	}
	batch := make([]*batchFuture, 40)
	futures := make([]jetstream.PubAckFuture, len(batch))
	for i := range batch {
		batch[i] = &batchFuture{msg: eventMsg(fmt.Sprintf("e%d", i)), ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
		futures[i] = batch[i]
	}
	batcher.send(batch)()
	acks := await(t, futures)
	if batcher.refused.Load() != 1 {
		t.Fatalf("refused batches: %d, want 1 (a duplicate refuses the whole batch)", batcher.refused.Load())
	}
	for i, ack := range acks {
		if ack.Duplicate != (i == 3) {
			t.Fatalf("message %d: duplicate %v", i, ack.Duplicate)
		}
	}
	if ids := storedIDs(t, b.JS, EventsStream); len(ids) != 40 {
		t.Fatalf("%d messages stored, want 40: %v", len(ids), ids)
	}
}

func TestBatcherOnAStreamWithoutBatches(t *testing.T) {
	b, _ := openBus(t, Config{StoreDir: t.TempDir(), Sync: SyncAlways}, false)
	if _, err := b.JS.CreateStream(t.Context(), jetstream.StreamConfig{Name: "PLAIN", Subjects: []string{"plain.>"}}); err != nil {
		t.Fatal(err)
	}
	batcher := NewBatcher(b.JS, "PLAIN", true)
	batch := make([]*batchFuture, 40)
	futures := make([]jetstream.PubAckFuture, len(batch))
	for i := range batch {
		m := eventMsg(fmt.Sprintf("p%d", i))
		m.Subject = "plain.x"
		batch[i] = &batchFuture{msg: m, ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
		futures[i] = batch[i]
	}
	batcher.send(batch)()
	await(t, futures)
	if c := batcher.committed.Load(); c != 0 {
		t.Fatalf("%d batches committed on a stream that does not allow them", c)
	}
	if ids := storedIDs(t, b.JS, "PLAIN"); len(ids) != 40 {
		t.Fatalf("%d messages stored, want 40", len(ids))
	}
}

func TestBatcherWithoutBatchesPublishesAtOnce(t *testing.T) {
	b, _ := openBus(t, Config{StoreDir: t.TempDir(), Sync: "2m"}, false)
	if b.Batches() {
		t.Fatal("a server that syncs every 2 minutes gains nothing from batches")
	}
	batcher := NewBatcher(b.JS, EventsStream, b.Batches())
	futures := make([]jetstream.PubAckFuture, 300)
	for i := range futures {
		futures[i] = batcher.PublishAsync(eventMsg(fmt.Sprintf("e%d", i)))
	}
	await(t, futures)
	if c := batcher.committed.Load(); c != 0 {
		t.Fatalf("%d batches committed", c)
	}
	if ids := storedIDs(t, b.JS, EventsStream); len(ids) != 300 {
		t.Fatalf("%d messages stored, want 300", len(ids))
	}
}

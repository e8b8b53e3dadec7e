package bus

import (
	"errors"
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
	batcher := NewBatcher(b.JS, EventsStream)
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
	if st := batcher.Stats(); st.Batched+st.Alone != n || st.Batches != batcher.committed.Load() || st.Batched < int64(batcher.minBatch)*st.Batches {
		t.Fatalf("stats %+v: want every one of %d messages counted once, at least %d in each batch", st, n, batcher.minBatch)
	}
}

func TestPacedBatcherGathersWhileItPauses(t *testing.T) {
	b, _ := openBus(t, Config{StoreDir: t.TempDir(), Sync: SyncAlways}, false)
	const pause = time.Second
	batcher := NewPacedBatcher(b.JS, EventsStream, pause)
	if !batcher.takesBatches() {
		t.Fatal("the stream should take atomic batches")
	}
	// A message that finds the stream quiet goes at once.
	start := time.Now()
	if _, err := batcher.Publish(t.Context(), eventMsg("first")); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took >= pause/2 {
		t.Fatalf("the first message took %s to store: it waited for the pause", took)
	}
	// Those that follow wait for the pause since its answer, and go in one
	// group, however they arrive.
	const n = 100
	futures := make([]jetstream.PubAckFuture, n)
	for i := range n {
		futures[i] = batcher.PublishAsync(eventMsg(fmt.Sprintf("e%d", i)))
		if i%10 == 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	await(t, futures)
	if took := time.Since(start); took < pause {
		t.Fatalf("the second group was stored %s after the first message: want the pause of %s between them", took, pause)
	}
	if st := batcher.Stats(); st.Batches != 1 || st.Batched != n || st.Alone != 1 {
		t.Fatalf("stats %+v: want the first message alone and the %d after it in one batch", st, n)
	}
	if ids := storedIDs(t, b.JS, EventsStream); len(ids) != n+1 || ids[0] != "first" || ids[n] != fmt.Sprintf("e%d", n-1) {
		t.Fatalf("stored %d messages (%v...): want the first, then the %d in order", len(ids), ids[:min(len(ids), 3)], n)
	}
}

func TestPacedBatcherSendsAWholeGroupWithoutPausing(t *testing.T) {
	b, _ := openBus(t, Config{StoreDir: t.TempDir(), Sync: SyncAlways}, false)
	const pause = 2 * time.Second
	batcher := NewPacedBatcher(b.JS, EventsStream, pause)
	if !batcher.takesBatches() {
		t.Fatal("the stream should take atomic batches")
	}
	if _, err := batcher.Publish(t.Context(), eventMsg("first")); err != nil {
		t.Fatal(err)
	}
	// A backlog (the rules catching up) fills whole groups: each goes
	// without waiting for the pause, which could not make it larger.
	start := time.Now()
	const n = 3 * MaxBatch
	futures := make([]jetstream.PubAckFuture, n)
	for i := range n {
		futures[i] = batcher.PublishAsync(eventMsg(fmt.Sprintf("e%d", i)))
	}
	await(t, futures)
	if took := time.Since(start); took >= pause {
		t.Fatalf("%d messages took %s: want whole groups sent without the pause of %s", n, took, pause)
	}
	if st := batcher.Stats(); st.Batches != 3 || st.Batched != n {
		t.Fatalf("stats %+v: want the %d in 3 batches of %d", st, n, MaxBatch)
	}
}

// futuresOf makes the futures of msgs, as PublishAsync queues them.
func futuresOf(msgs []*nats.Msg) ([]*batchFuture, []jetstream.PubAckFuture) {
	group := make([]*batchFuture, len(msgs))
	futures := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		group[i] = &batchFuture{msg: m, ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
		futures[i] = group[i]
	}
	return group, futures
}

func TestBatcherBatchWithADuplicateIsSentAgainInHalves(t *testing.T) {
	b, _ := openBus(t, Config{StoreDir: t.TempDir(), Sync: SyncAlways}, false)
	batcher := NewBatcher(b.JS, EventsStream)
	if _, err := batcher.Publish(t.Context(), eventMsg("e3")); err != nil {
		t.Fatal(err)
	}
	msgs := make([]*nats.Msg, 80)
	for i := range msgs {
		msgs[i] = eventMsg(fmt.Sprintf("e%d", i))
	}
	group, futures := futuresOf(msgs)
	batcher.send(group, true)()
	acks := await(t, futures)
	// The batch is refused (e3 is stored), then its first half too; the
	// second half commits, the first goes one by one.
	if r, c := batcher.refused.Load(), batcher.committed.Load(); r != 2 || c != 1 {
		t.Fatalf("refused %d, committed %d batches; want 2 and 1", r, c)
	}
	if st := batcher.Stats(); st.Batched != 40 || st.Alone != 40 {
		t.Fatalf("stats %+v: want 40 messages stored in a batch, 40 alone (e3 first, then the refused half but e3 again)", st)
	}
	for i, ack := range acks {
		if ack.Duplicate != (i == 3) {
			t.Fatalf("message %d: duplicate %v", i, ack.Duplicate)
		}
	}
	if ids := storedIDs(t, b.JS, EventsStream); len(ids) != 80 {
		t.Fatalf("%d messages stored, want 80: %v", len(ids), ids)
	}
}

// TestBatcherBatchWithARefusedMessage: a message the stream refuses (its
// subject must be empty and is not) fails alone with the stream's answer;
// the rest of its batch is stored.
func TestBatcherBatchWithARefusedMessage(t *testing.T) {
	b, _ := openBus(t, Config{StoreDir: t.TempDir(), Sync: SyncAlways}, false)
	batcher := NewBatcher(b.JS, EventsStream)
	onlyIfEmpty := func(id string) *nats.Msg {
		m := eventMsg(id)
		m.Subject = "events.test.order." + id
		m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
		return m
	}
	first, err := batcher.Publish(t.Context(), onlyIfEmpty("e5"))
	if err != nil {
		t.Fatal(err)
	}
	msgs := make([]*nats.Msg, 40)
	for i := range msgs {
		msgs[i] = onlyIfEmpty(fmt.Sprintf("e%d", i))
	}
	msgs[5].Header.Set(jetstream.MsgIDHeader, "e5-again") // not a known id
	group, futures := futuresOf(msgs)
	batcher.send(group, true)()
	for i, f := range futures {
		select {
		case <-f.Ok():
			if i == 5 {
				t.Fatal("the copy of e5 was stored")
			}
		case err := <-f.Err():
			var apiErr *jetstream.APIError
			if i != 5 || !errors.As(err, &apiErr) || apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence ||
				apiErr.Description != fmt.Sprintf("wrong last sequence: %d", first.Sequence) {
				t.Fatalf("message %d: %v", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d: no answer", i)
		}
	}
	if r := batcher.refused.Load(); r == 0 {
		t.Fatal("no batch refused: the test sent none")
	}
	if ids := storedIDs(t, b.JS, EventsStream); len(ids) != 40 {
		t.Fatalf("%d messages stored, want 40: %v", len(ids), ids)
	}
}

func TestBatcherTooLargeMessageFailsAlone(t *testing.T) {
	b, _ := openBus(t, Config{StoreDir: t.TempDir(), Sync: SyncAlways}, false)
	batcher := NewBatcher(b.JS, EventsStream)
	msgs := make([]*nats.Msg, 40)
	for i := range msgs {
		msgs[i] = eventMsg(fmt.Sprintf("e%d", i))
	}
	msgs[20].Data = make([]byte, b.Conn.MaxPayload()+1)
	group, futures := futuresOf(msgs)
	batcher.send(group, true)()
	for i, f := range futures {
		select {
		case <-f.Ok():
			if i == 20 {
				t.Fatalf("the message over the connection's max payload was stored")
			}
		case err := <-f.Err():
			if i != 20 {
				t.Fatalf("message %d failed with the large one: %v", i, err)
			}
			if !errors.Is(err, nats.ErrMaxPayload) {
				t.Fatalf("the large message failed with %v, want %v", err, nats.ErrMaxPayload)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d: no answer", i)
		}
	}
	if ids := storedIDs(t, b.JS, EventsStream); len(ids) != 39 {
		t.Fatalf("%d messages stored, want 39", len(ids))
	}
}

func TestBatcherOnAStreamWithoutBatches(t *testing.T) {
	b, _ := openBus(t, Config{StoreDir: t.TempDir(), Sync: SyncAlways}, false)
	if _, err := b.JS.CreateStream(t.Context(), jetstream.StreamConfig{Name: "PLAIN", Subjects: []string{"plain.>"}}); err != nil {
		t.Fatal(err)
	}
	batcher := NewBatcher(b.JS, "PLAIN")
	msgs := make([]*nats.Msg, 40)
	for i := range msgs {
		msgs[i] = eventMsg(fmt.Sprintf("p%d", i))
		msgs[i].Subject = "plain.x"
	}
	group, futures := futuresOf(msgs)
	batcher.send(group, true)()
	await(t, futures)
	if c := batcher.committed.Load(); c != 0 {
		t.Fatalf("%d batches committed on a stream that does not allow them", c)
	}
	if ids := storedIDs(t, b.JS, "PLAIN"); len(ids) != 40 {
		t.Fatalf("%d messages stored, want 40", len(ids))
	}
}

// TestStreamsAllowBatchesOnlyWhereTheyPay: batches pay only where every
// write is synced; elsewhere the streams do not take them, and the bot does
// not send them.
func TestStreamsAllowBatchesOnlyWhereTheyPay(t *testing.T) {
	for _, c := range []struct {
		sync string
		want bool
	}{{SyncAlways, true}, {"1s", false}, {"2m", false}} {
		b, _ := openBus(t, Config{StoreDir: t.TempDir(), Sync: c.sync}, false)
		if b.Batches() != c.want {
			t.Errorf("sync %s: Batches() = %v, want %v", c.sync, b.Batches(), c.want)
		}
		for _, name := range []string{EventsStream, ActionsStream} {
			s, err := b.JS.Stream(t.Context(), name)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.CachedInfo().Config.AllowAtomicPublish; got != c.want {
				t.Errorf("sync %s: %s allows atomic publish: %v, want %v", c.sync, name, got, c.want)
			}
		}
	}
}

// TestActionsAreReadThroughTheLeader: schedule.cancel reads the schedules of
// a key from ACTIONS. A direct read may be answered by a replica that has
// not stored the newest yet, which would leave a cancelled job to fire; a
// stream updated from an older bot loses its direct reads too.
func TestActionsAreReadThroughTheLeader(t *testing.T) {
	b, _ := openBus(t, Config{StoreDir: t.TempDir()}, false)
	ctx := t.Context()
	s, err := b.JS.Stream(ctx, ActionsStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	if cfg.AllowDirect {
		t.Fatalf("%s allows direct reads", ActionsStream)
	}
	cfg.AllowDirect = true
	if _, err := b.JS.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := Setup(ctx, b.JS, Config{}); err != nil {
		t.Fatal(err)
	}
	if s, err = b.JS.Stream(ctx, ActionsStream); err != nil {
		t.Fatal(err)
	}
	if s.CachedInfo().Config.AllowDirect {
		t.Errorf("%s still allows direct reads after Setup", ActionsStream)
	}
}

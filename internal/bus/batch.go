package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// The headers of a JetStream atomic batch (ADR-50, nats-server 2.12 and
// later): every message carries the batch id and its place in the batch; the
// last one commits the batch, and only it is answered, with the PubAck of the
// batch's last message.
const (
	batchIDHeader     = "Nats-Batch-Id"
	batchSeqHeader    = "Nats-Batch-Sequence"
	batchCommitHeader = "Nats-Batch-Commit"
)

// MaxBatch is the most messages a Batcher puts in one atomic batch; the
// server's own limit is 1,000.
const MaxBatch = 256

// Batcher stores messages on one stream, committing those that queue up
// while earlier ones are being stored as one JetStream atomic batch. With
// nats.sync always the server syncs every stored message to disk before its
// PubAck, one message at a time per stream, so a stream takes about as many
// messages per second as the disk takes syncs. A committed batch is synced
// once; the server stages it in files of its own first, which costs a few
// milliseconds, so batches pay from about 16 messages on, with many
// senders (see minBatch). This is group
// commit: a message that finds a free slot goes at once; messages that
// arrive while both slots wait for their PubAcks queue up, and go together
// when a slot frees: as one batch if there are enough of them, one by one,
// pipelined, if not.
//
// A message is stored once its future's Ok channel delivers, exactly as with
// jetstream's PublishMsgAsync. Messages are sent in the order they were
// given, except those of a batch the stream refused (a message in it is a
// duplicate, too many batches in flight), which are sent again, in halves
// or one by one, after messages given later may have been stored. A refused
// batch stored none of its messages. Every message must carry a
// Nats-Msg-Id, so that a retry after a lost answer stores nothing twice.
type Batcher struct {
	js     jetstream.JetStream
	stream string
	// slots bounds the groups in flight at once.
	slots int
	// minBatch is the fewest messages sent as an atomic batch; fewer go
	// one by one, pipelined, which costs less than staging a batch.
	// Measured with BenchmarkPublishBatched: 8 lost to one by one at 16
	// senders; 16 took 5 to 15% less time per message than 32 at 16 and
	// 64 senders, and `bot bench` at 64 connections stored 10% more
	// webhooks a second with it (a third of the events had gone one by
	// one, in groups of 7 on average, each synced on its own).
	minBatch int
	// pause, when set, is the least time between a group's answer and the
	// next group (see NewPacedBatcher); answered is when the last group was
	// answered, guarded by sendMu. full ends a pause early: the queue holds
	// a whole group.
	pause    time.Duration
	answered time.Time
	full     chan struct{}
	// timeout bounds the wait for a PubAck.
	timeout time.Duration

	mu       sync.Mutex
	queue    []*batchFuture
	inflight int

	sendMu sync.Mutex // held while a group is taken from the queue and sent

	// atomic is 1 when the stream takes atomic batches, -1 when it does
	// not, 0 until known.
	atomic atomic.Int32
	// committed counts the atomic batches committed, refused the ones the
	// stream refused; batched the messages stored in committed batches,
	// alone those stored one by one.
	committed, refused, batched, alone atomic.Int64
}

// BatcherStats is what a Batcher has stored since it was made.
type BatcherStats struct {
	// Batches is the atomic batches committed, Refused those the stream
	// refused (their messages went again, in halves or one by one).
	Batches, Refused int64
	// Batched is the messages stored in committed batches, Alone those
	// stored one by one: groups too small to pay for a batch, the messages
	// of a refused batch sent again one by one, and all of them on a stream
	// without batches. Neither counts a duplicate the stream already held,
	// or a message that failed. The counters are read one after the
	// other, so a read during a commit may see its batch without its
	// messages.
	Batched, Alone int64
}

// Stats reports what b has stored.
func (b *Batcher) Stats() BatcherStats {
	return BatcherStats{Batches: b.committed.Load(), Refused: b.refused.Load(), Batched: b.batched.Load(), Alone: b.alone.Load()}
}

// NewBatcher returns a Batcher for stream. Use it where every write is
// synced (Bus.Batches): elsewhere batches cost more than they save, the
// server staging each in files of its own. Whether the stream takes atomic
// batches (its config allows them and the server knows them) is read from
// the stream's info when the first batch is sent; if it does not, messages
// go one by one.
func NewBatcher(js jetstream.JetStream, stream string) *Batcher {
	return &Batcher{js: js, stream: stream, slots: 2, minBatch: 16, timeout: 5 * time.Second}
}

// NewPacedBatcher returns a Batcher for a stream whose writers keep no
// webhook's sender waiting (the rules engine storing jobs): one group in
// flight at a time, and the next taken from the queue pause after its
// answer, or as soon as the queue holds MaxBatch messages. A message that
// finds the stream quiet goes at once; under load the groups are fewer and
// larger than NewBatcher's, each message waiting up to pause more. Every
// atomic batch costs the server a staging directory of its own (made, its
// meta file synced, removed), and the streams share the disk and the CPUs:
// fewer batches of jobs leave more of both to the events, whose webhooks
// wait for their PubAcks. With one group in flight, a group the server
// does not answer holds the others back until its timeout.
func NewPacedBatcher(js jetstream.JetStream, stream string, pause time.Duration) *Batcher {
	b := NewBatcher(js, stream)
	b.slots, b.pause, b.full = 1, pause, make(chan struct{}, 1)
	return b
}

// PublishAsync queues msg and returns its future, without waiting for the
// PubAck.
func (b *Batcher) PublishAsync(msg *nats.Msg) jetstream.PubAckFuture {
	f := &batchFuture{msg: msg, ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
	b.mu.Lock()
	b.queue = append(b.queue, f)
	if len(b.queue) == MaxBatch && b.full != nil {
		select {
		case b.full <- struct{}{}:
		default:
		}
	}
	start := b.inflight < b.slots
	if start {
		b.inflight++
	}
	b.mu.Unlock()
	if start {
		go b.run()
	}
	return f
}

// Publish queues msg and waits for its PubAck, or for ctx.
func (b *Batcher) Publish(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error) {
	f := b.PublishAsync(msg)
	select {
	case ack := <-f.Ok():
		return ack, nil
	case err := <-f.Err():
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// run sends groups from the queue until it is empty.
func (b *Batcher) run() {
	for {
		b.sendMu.Lock()
		if wait := b.pause - time.Since(b.answered); wait > 0 {
			b.awaitGroup(wait)
		}
		b.mu.Lock()
		n := min(len(b.queue), MaxBatch)
		if n == 0 {
			b.inflight--
			b.mu.Unlock()
			b.sendMu.Unlock()
			return
		}
		group := make([]*batchFuture, n)
		copy(group, b.queue)
		clear(b.queue[:n])
		b.queue = b.queue[n:]
		if len(b.queue) == 0 {
			b.queue = nil
		}
		b.mu.Unlock()
		wait := b.send(group, true)
		b.sendMu.Unlock()
		wait()
		if b.pause > 0 {
			b.sendMu.Lock()
			b.answered = time.Now()
			b.sendMu.Unlock()
		}
	}
}

// awaitGroup waits for d, while the messages that arrive join the next
// group, or until the queue holds a whole group.
func (b *Batcher) awaitGroup(d time.Duration) {
	select {
	case <-b.full: // from a group already taken
	default:
	}
	b.mu.Lock()
	full := len(b.queue) >= MaxBatch
	b.mu.Unlock()
	if full {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-b.full:
	}
}

// send publishes a group, as one atomic batch if it is large enough and the
// stream takes batches, and returns what waits for its outcome. A refused
// batch is sent again in two halves if split, else one by one.
func (b *Batcher) send(group []*batchFuture, split bool) func() {
	if len(group) < b.minBatch || !b.takesBatches() {
		return b.sendEach(group)
	}
	id := nuid.Next()
	nc := b.js.Conn()
	last := len(group) - 1
	var commit jetstream.PubAckFuture
	var err error
	for i, f := range group {
		m := &nats.Msg{Subject: f.msg.Subject, Data: f.msg.Data, Header: make(nats.Header, len(f.msg.Header)+3)}
		for k, v := range f.msg.Header {
			m.Header[k] = v
		}
		m.Header.Set(batchIDHeader, id)
		m.Header.Set(batchSeqHeader, strconv.Itoa(i+1))
		if i < last {
			if err = nc.PublishMsg(m); err != nil {
				break
			}
			continue
		}
		m.Header.Set(batchCommitHeader, "1")
		commit, err = b.js.PublishMsgAsync(m, jetstream.WithRetryAttempts(0))
	}
	if err != nil {
		// The batch was not committed (the server drops what it staged):
		// one message too large for the connection, or the connection
		// lost. One by one, each message gets its own answer.
		return b.sendEach(group)
	}
	return func() {
		timer := time.NewTimer(b.timeout)
		defer timer.Stop()
		select {
		case ack := <-commit.Ok():
			b.committed.Add(1)
			b.batched.Add(int64(len(group)))
			first := ack.Sequence - uint64(last)
			for i, f := range group {
				f.done(&jetstream.PubAck{Stream: ack.Stream, Sequence: first + uint64(i), Domain: ack.Domain})
			}
		case err := <-commit.Err():
			var apiErr *jetstream.APIError
			if !errors.As(err, &apiErr) {
				// Not stored, or not known to be: each caller decides.
				for _, f := range group {
					f.fail(err)
				}
				return
			}
			// The stream refused the batch, storing none of it: a
			// duplicate in it (a retry after a lost answer), batches not
			// allowed, too many in flight.
			b.refused.Add(1)
			if apiErr.ErrorCode == jetstream.ErrorCode(atomicPublishDisabled) {
				b.atomic.Store(-1)
			}
			if !split {
				b.sendEach(group)()
				return
			}
			h := len(group) / 2
			wait := b.send(group[:h], false)
			b.send(group[h:], false)()
			wait()
		case <-timer.C:
			for _, f := range group {
				f.fail(fmt.Errorf("no PubAck for a batch of %d within %s", len(group), b.timeout))
			}
		}
	}
}

// atomicPublishDisabled is the server's error code for a batch sent to a
// stream that does not allow atomic publishing.
const atomicPublishDisabled = 10174

// sendEach publishes each message on its own.
func (b *Batcher) sendEach(group []*batchFuture) func() {
	futures := make([]jetstream.PubAckFuture, len(group))
	for i, f := range group {
		pf, err := b.js.PublishMsgAsync(f.msg)
		if err != nil {
			f.fail(err)
			continue
		}
		futures[i] = pf
	}
	return func() {
		timeout := time.NewTimer(b.timeout)
		defer timeout.Stop()
		expired := false
		for i, pf := range futures {
			if pf == nil {
				continue
			}
			if !expired {
				select {
				case ack := <-pf.Ok():
					b.storedAlone(ack)
					group[i].done(ack)
					continue
				case err := <-pf.Err():
					group[i].fail(err)
					continue
				case <-timeout.C:
					expired = true
				}
			}
			// Past the deadline: what has its answer gets it, the rest fail.
			select {
			case ack := <-pf.Ok():
				b.storedAlone(ack)
				group[i].done(ack)
			case err := <-pf.Err():
				group[i].fail(err)
			default:
				group[i].fail(fmt.Errorf("no PubAck within %s", b.timeout))
			}
		}
	}
}

// storedAlone counts a message stored on its own (not a duplicate).
func (b *Batcher) storedAlone(ack *jetstream.PubAck) {
	if !ack.Duplicate {
		b.alone.Add(1)
	}
}

// takesBatches reports whether the stream takes atomic batches, reading its
// info the first time (and again after a failed read).
func (b *Batcher) takesBatches() bool {
	switch b.atomic.Load() {
	case 1:
		return true
	case -1:
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s, err := b.js.Stream(ctx, b.stream)
	if err != nil {
		return false // unknown still: one by one this time
	}
	if s.CachedInfo().Config.AllowAtomicPublish {
		b.atomic.Store(1)
		return true
	}
	b.atomic.Store(-1)
	return false
}

// batchFuture is the future of one message given to a Batcher.
type batchFuture struct {
	msg *nats.Msg
	ok  chan *jetstream.PubAck
	err chan error
}

func (f *batchFuture) Ok() <-chan *jetstream.PubAck { return f.ok }
func (f *batchFuture) Err() <-chan error            { return f.err }
func (f *batchFuture) Msg() *nats.Msg               { return f.msg }

func (f *batchFuture) done(ack *jetstream.PubAck) { f.ok <- ack }
func (f *batchFuture) fail(err error)             { f.err <- err }

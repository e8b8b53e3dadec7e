package ingest

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// RecentIDs remembers the ids of the events stored in the last window, so
// that a repeat is answered as a duplicate without being stored again.
//
// JetStream can do this itself (a stream's duplicate window), but it keeps
// each id as a string in a map, and the collector has to walk every one of
// them in each cycle: at 2,000 events/s a two-minute window is a million
// objects, and the collector's marking then takes over 100 ms, while the
// webhooks wait. RecentIDs keeps 128 bits of hash per id in maps that hold
// no pointers, which the collector does not walk.
//
// The ids come from the events this process publishes (Add) and from all
// the events stored in the stream, whoever stored them (Follow): another
// replica's, or, on start, those stored within the window before this
// process started. The stream keeps its own duplicate window, shorter
// (bus.MsgIDWindow), for the copies of an event that two replicas store at
// the same moment, before either has seen the other's.
type RecentIDs struct {
	window time.Duration
	now    func() time.Time
	seeds  [2]maphash.Seed

	mu sync.Mutex
	// cur holds the ids stored since curFrom, prev those of the window
	// before. At curFrom + window, cur becomes prev and prev is dropped, so
	// an id is remembered for at least window and at most twice that.
	cur, prev map[idHash]struct{}
	curFrom   time.Time
}

type idHash [2]uint64

// NewRecentIDs remembers ids for window (at most twice that).
func NewRecentIDs(window time.Duration) *RecentIDs {
	r := &RecentIDs{window: window, now: time.Now, seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}}
	r.cur, r.prev = map[idHash]struct{}{}, map[idHash]struct{}{}
	r.curFrom = r.now()
	return r
}

// Window is how long an id is remembered, at least.
func (r *RecentIDs) Window() time.Duration { return r.window }

func (r *RecentIDs) hash(id string) idHash {
	return idHash{maphash.String(r.seeds[0], id), maphash.String(r.seeds[1], id)}
}

// rotate moves the generations on to now. r.mu is held.
func (r *RecentIDs) rotate(now time.Time) {
	switch age := now.Sub(r.curFrom); {
	case age >= 2*r.window:
		r.prev, r.cur = map[idHash]struct{}{}, map[idHash]struct{}{}
		r.curFrom = now
	case age >= r.window:
		r.prev, r.cur = r.cur, make(map[idHash]struct{}, len(r.cur))
		r.curFrom = r.curFrom.Add(r.window)
	}
}

// Seen reports whether an event with this id was stored within the window.
func (r *RecentIDs) Seen(id string) bool {
	h := r.hash(id)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rotate(r.now())
	if _, ok := r.cur[h]; ok {
		return true
	}
	_, ok := r.prev[h]
	return ok
}

// Add records that an event with this id was stored at the time at.
func (r *RecentIDs) Add(id string, at time.Time) {
	h := r.hash(id)
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	r.rotate(now)
	switch {
	case now.Sub(at) >= r.window:
		// Out of the window already.
	case !at.Before(r.curFrom):
		r.cur[h] = struct{}{}
	default:
		r.prev[h] = struct{}{}
	}
}

// Len is how many ids are remembered.
func (r *RecentIDs) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.cur) + len(r.prev)
}

// Follow reads the ids of the events stored in stream, from window ago on,
// and remembers them. It returns once it has read those stored before it
// was called, or with ctx's error, or when it could not start. run then
// goes on reading new ones until its context is done; it is never nil.
//
// Only the message headers are read. If the stream goes away or the
// connection breaks, run starts again where it stopped, and logs why.
func (r *RecentIDs) Follow(ctx context.Context, js jetstream.JetStream, stream string, log *slog.Logger) (run func(context.Context) error, err error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("event ids: %w", err)
	}
	start := r.now().Add(-r.window)
	state := s.CachedInfo().State
	f := &follower{r: r, js: js, stream: stream, log: log}
	if state.LastSeq == 0 || state.LastTime.Before(start) {
		f.next = state.LastSeq + 1
		return f.run, nil
	}
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartTimePolicy,
		OptStartTime:  &start,
		HeadersOnly:   true,
	})
	if err != nil {
		return nil, fmt.Errorf("event ids: %w", err)
	}
	f.msgs, err = cons.Messages()
	if err != nil {
		return nil, fmt.Errorf("event ids: %w", err)
	}
	// Read up to the last one stored before now. Should some of them be
	// gone (the stream purged meanwhile), a quiet consumer ends the wait.
	for f.next <= state.LastSeq {
		rctx, cancel := context.WithTimeout(ctx, quietFor)
		err := f.read(rctx)
		cancel()
		if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			f.msgs.Stop()
			return nil, fmt.Errorf("event ids: reading those stored in the last %s: %w", r.window, err)
		}
	}
	return f.run, nil
}

// quietFor is how long Follow waits for the next id while it reads those
// stored before it was called.
const quietFor = 5 * time.Second

// follower reads the ids stored in a stream, in order.
type follower struct {
	r      *RecentIDs
	js     jetstream.JetStream
	stream string
	log    *slog.Logger
	msgs   jetstream.MessagesContext
	// next is the stream sequence of the next message to read.
	next uint64
}

// read remembers the id of the next message.
func (f *follower) read(ctx context.Context) error {
	msg, err := f.msgs.Next(jetstream.NextContext(ctx))
	if err != nil {
		return err
	}
	meta, err := msg.Metadata()
	if err != nil {
		return err
	}
	f.next = meta.Sequence.Stream + 1
	if id := msg.Headers().Get(jetstream.MsgIDHeader); id != "" {
		f.r.Add(id, meta.Timestamp)
	}
	return nil
}

func (f *follower) run(ctx context.Context) error {
	defer func() {
		if f.msgs != nil {
			f.msgs.Stop()
		}
	}()
	const pause = time.Second
	for ctx.Err() == nil {
		if f.msgs == nil {
			if err := f.open(ctx); err != nil {
				if ctx.Err() == nil {
					f.log.Warn("event ids: cannot follow the stream; repeats stored by other replicas may be stored again",
						"stream", f.stream, "err", err, "retry_in", pause)
				}
				sleep(ctx, pause)
				continue
			}
		}
		if err := f.read(ctx); err != nil {
			if ctx.Err() != nil {
				break
			}
			f.log.Warn("event ids: following the stream stopped; starting again", "stream", f.stream, "err", err)
			f.msgs.Stop()
			f.msgs = nil
			sleep(ctx, pause)
		}
	}
	return nil
}

// open starts reading at f.next, or from window ago if that is later.
func (f *follower) open(ctx context.Context) error {
	start := f.r.now().Add(-f.r.window)
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &start, HeadersOnly: true}
	if f.next > 1 {
		cfg = jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: f.next, HeadersOnly: true}
	}
	cons, err := f.js.OrderedConsumer(ctx, f.stream, cfg)
	if err != nil {
		return err
	}
	msgs, err := cons.Messages()
	if err != nil {
		return err
	}
	f.msgs = msgs
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

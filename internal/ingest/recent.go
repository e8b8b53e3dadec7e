package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/event"
	"github.com/comm100bot/bot/internal/idhash"
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
	// span is how long a generation of ids covers: an eighth of window.
	span time.Duration
	now  func() time.Time
	hash idhash.Hasher
	// quiet is how long Follow waits for an id (quietFor; shorter in tests).
	quiet time.Duration

	mu sync.Mutex
	// gens holds the ids by when they were stored, one generation per span,
	// oldest first. A generation is dropped once its last instant is
	// window old, so an id is remembered for at least window and at most
	// window + span: generations as long as the window would hold up to
	// twice its ids.
	gens []generation

	behind atomic.Int64 // see Behind
}

// generation is the ids stored within one span: from slot*span on (in Unix
// nanoseconds), for span.
type generation struct {
	slot int64
	ids  map[idhash.Sum]struct{}
}

// generations is how many spans a window is cut into.
const generations = 8

// NewRecentIDs remembers ids for window (at most an eighth more).
func NewRecentIDs(window time.Duration) *RecentIDs {
	r := &RecentIDs{window: window, span: max(window/generations, 1), now: time.Now, quiet: quietFor, hash: idhash.New()}
	r.behind.Store(-1)
	return r
}

// Window is how long an id is remembered, at least.
func (r *RecentIDs) Window() time.Duration { return r.window }

// slot is the number of the span that holds t. Spans follow the wall clock:
// should it jump forward, the generations it skips go early, as the ids
// they hold are then older by that clock.
func (r *RecentIDs) slot(t time.Time) int64 {
	ns, span := t.UnixNano(), int64(r.span)
	if ns < 0 {
		return (ns - span + 1) / span
	}
	return ns / span
}

// expire drops the generations that ended window ago or earlier. r.mu is
// held.
func (r *RecentIDs) expire(now time.Time) {
	oldest := r.slot(now.Add(-r.window)) // a generation before it has ended
	n := 0
	for n < len(r.gens) && r.gens[n].slot < oldest {
		n++
	}
	r.gens = slices.Delete(r.gens, 0, n) // zeroes the tail: no dropped map stays reachable
}

// Seen reports whether an event with this id was stored within the window.
func (r *RecentIDs) Seen(id string) bool {
	h := r.hash.Of(id)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expire(r.now())
	for i := len(r.gens) - 1; i >= 0; i-- {
		if _, ok := r.gens[i].ids[h]; ok {
			return true
		}
	}
	return false
}

// Add records that an event with this id was stored at the time at.
func (r *RecentIDs) Add(id string, at time.Time) {
	h := r.hash.Of(id)
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	r.expire(now)
	if now.Sub(at) >= r.window {
		return // out of the window already
	}
	// A time ahead of this clock (another server's, read from the stream)
	// counts as now: the event was stored about now, and an id kept by a
	// time far ahead would be kept for as long.
	if at.After(now) {
		at = now
	}
	slot := r.slot(at)
	i := len(r.gens)
	for i > 0 && r.gens[i-1].slot >= slot {
		i--
	}
	if i == len(r.gens) || r.gens[i].slot != slot {
		// A new generation, made at the size of the last one, which the
		// rate most likely fills again.
		size := 0
		if n := len(r.gens); n > 0 {
			size = len(r.gens[n-1].ids)
		}
		r.gens = slices.Insert(r.gens, i, generation{slot: slot, ids: make(map[idhash.Sum]struct{}, size)})
	}
	r.gens[i].ids[h] = struct{}{}
}

// Len is how many ids are remembered.
func (r *RecentIDs) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expire(r.now())
	n := 0
	for _, g := range r.gens {
		n += len(g.ids)
	}
	return n
}

// Behind is how many events were stored that Follow had not read, when it
// last read one or looked at the stream; -1 before either.
func (r *RecentIDs) Behind() int64 { return r.behind.Load() }

// Follow reads the ids of the events stored in stream, from window ago on,
// and remembers them. It returns once it has read those stored before it
// was called, or with ctx's error, or when it could not start. run then
// goes on reading new ones until its context is done; it is never nil, and
// must be called, if only with a context already done, to let the reader go.
// Start it at once: until it runs, only this process's own events are
// remembered, and repeats another replica took are stored again after the
// stream's short window.
//
// Only the message headers are read. When the connection breaks, or the
// stream is lost or made anew, run starts again where it stopped (from the
// window, for a new stream or after a long break), and logs why.
func (r *RecentIDs) Follow(ctx context.Context, js jetstream.JetStream, stream string, log *slog.Logger) (run func(context.Context) error, err error) {
	f := &follower{r: r, js: js, stream: stream, log: log}
	last, err := f.open(ctx)
	if err != nil {
		return nil, fmt.Errorf("event ids: %w", err)
	}
	// Read up to the last one stored before now. Should some of them be
	// gone (the stream purged meanwhile), a quiet consumer ends the wait.
	for f.next <= last {
		err := f.read(r.quiet)
		if ctx.Err() != nil {
			f.close()
			return nil, ctx.Err()
		}
		if errors.Is(err, nats.ErrTimeout) {
			log.Warn("event ids: the stream went quiet before the last id stored; going on",
				"stream", stream, "read_up_to", f.next-1, "last", last)
			break
		}
		if err != nil {
			f.close()
			return nil, fmt.Errorf("event ids: reading those stored in the last %s: %w", r.window, err)
		}
	}
	return f.run, nil
}

// quietFor is how long Follow waits for the next id while it reads those
// stored before it was called, and how often run looks at the stream.
const quietFor = 5 * time.Second

// follower reads the ids stored in a stream, in order.
type follower struct {
	r      *RecentIDs
	js     jetstream.JetStream
	stream string
	log    *slog.Logger
	msgs   jetstream.MessagesContext
	// unwatch undoes the stop of msgs when a context ends.
	unwatch func() bool
	// next is the stream sequence of the next message to read; 0 before
	// the first. lastAt is when the last one read was stored. created
	// tells the stream read from one made anew.
	next    uint64
	lastAt  time.Time
	created time.Time
	// checked is when run last looked at the stream.
	checked time.Time
}

// open starts reading where the follower stopped; from window ago if the
// last id read is older than that, or if the stream is not the one it read
// (made anew, its sequence started again). It returns the last sequence
// stored.
func (f *follower) open(ctx context.Context) (last uint64, err error) {
	s, err := f.js.Stream(ctx, f.stream)
	if err != nil {
		return 0, err
	}
	info := s.CachedInfo()
	state := info.State
	start := f.r.now().Add(-f.r.window)
	if f.next == 0 || f.madeAnew(info) || f.lastAt.Before(start) {
		f.created = info.Created
		f.next = 0
		if state.LastSeq == 0 || state.LastTime.Before(start) {
			f.next = state.LastSeq + 1
		}
	}
	cfg := jetstream.OrderedConsumerConfig{
		HeadersOnly: true,
		// One try, no backoff, when the client makes the consumer
		// again: run tries again itself, and stops when told.
		MaxResetAttempts: 1,
		// A consumer left by a reader that stopped goes soon.
		InactiveThreshold: 30 * time.Second,
	}
	if f.next == 0 {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
	} else {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, f.next
	}
	cons, err := f.js.OrderedConsumer(ctx, f.stream, cfg)
	if err != nil {
		return 0, err
	}
	msgs, err := cons.Messages()
	if err != nil {
		return 0, err
	}
	f.msgs, f.unwatch = msgs, context.AfterFunc(ctx, msgs.Stop)
	f.checked = f.r.now()
	return state.LastSeq, nil
}

// madeAnew reports whether info is of another stream than the one read: it
// was made at another time, or holds fewer messages than were read.
func (f *follower) madeAnew(info *jetstream.StreamInfo) bool {
	return !info.Created.Equal(f.created) || f.next > info.State.LastSeq+1
}

// watch stops the reader when ctx ends, instead of the context it was
// opened with: the client's own retries do not look at Next's context.
func (f *follower) watch(ctx context.Context) {
	if f.msgs != nil {
		f.unwatch()
		f.unwatch = context.AfterFunc(ctx, f.msgs.Stop)
	}
}

func (f *follower) close() {
	if f.msgs != nil {
		f.unwatch()
		f.msgs.Stop()
		f.msgs = nil
	}
}

// read remembers the id of the next message, waiting for it at most wait
// (nats.ErrTimeout). A context's end stops f.msgs (see open and watch).
func (f *follower) read(wait time.Duration) error {
	msg, err := f.msgs.Next(jetstream.NextMaxWait(wait))
	if err != nil {
		return err
	}
	meta, err := msg.Metadata()
	if err != nil {
		return err
	}
	f.next, f.lastAt = meta.Sequence.Stream+1, meta.Timestamp
	f.r.behind.Store(int64(meta.NumPending))
	h := msg.Headers()
	if id := h.Get(jetstream.MsgIDHeader); id != "" {
		f.r.Add(storedKey(msg.Subject(), id, h.Get(bus.KeyedHeader) != ""), meta.Timestamp)
	}
	return nil
}

// storedKey is the key, <source>/<id>, of an event stored on subject under
// message id id: the id itself when keyed (ingest marks the events it
// stores under their keys), or, for one that a version of the bot before
// keys stored under its bare id, the key made from the source in its
// subject (events.<source>.<type>), so that its repeats are recognised by
// their keys.
func storedKey(subject, id string, keyed bool) string {
	source, ok := event.SourceOf(subject)
	if keyed || !ok {
		return id
	}
	return source + "/" + id
}

// check looks at the stream, every quiet spell: it reports whether the
// stream is gone or made anew, and updates Behind.
func (f *follower) check(ctx context.Context) (anew bool, err error) {
	f.checked = f.r.now()
	s, err := f.js.Stream(ctx, f.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return true, err
	}
	if err != nil {
		return false, err // not answering now (an election, a reconnect): read on
	}
	info := s.CachedInfo()
	if f.madeAnew(info) {
		return true, nil
	}
	f.r.behind.Store(int64(info.State.LastSeq + 1 - f.next))
	return false, nil
}

func (f *follower) run(ctx context.Context) error {
	f.watch(ctx)
	defer f.close()
	const pause, maxPause = time.Second, 30 * time.Second
	wait := pause
	failing := false
	for ctx.Err() == nil {
		if f.msgs == nil {
			if _, err := f.open(ctx); err != nil {
				if ctx.Err() == nil && !failing {
					f.log.Warn("event ids: cannot read the stream; a repeat another replica took may be stored again",
						"stream", f.stream, "err", err)
				}
				failing = true
				bus.Sleep(ctx, wait)
				wait = min(2*wait, maxPause)
				continue
			}
			if failing {
				f.log.Info("event ids: reading the stream again", "stream", f.stream, "from", f.next)
			}
			failing, wait = false, pause
		}
		err := f.read(f.r.quiet)
		if ctx.Err() != nil {
			break
		}
		if err != nil && !errors.Is(err, nats.ErrTimeout) {
			f.log.Warn("event ids: reading the stream stopped; starting again", "stream", f.stream, "err", err)
			f.close()
			bus.Sleep(ctx, pause)
			continue
		}
		if f.r.now().Sub(f.checked) >= f.r.quiet {
			if anew, err := f.check(ctx); anew && ctx.Err() == nil {
				f.log.Warn("event ids: the stream is gone or was made anew; reading it again", "stream", f.stream, "err", err)
				f.close()
			}
		}
	}
	return nil
}

package actions

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// Limiter keeps calls inside a budget of calls in any window of per, exactly.
//
// The budget is calls slots. A call takes a free slot when it starts and
// marks it when it ends; the slot is free again once per has passed since
// that end. Any calls+1 calls seen by the server share a slot, so two of them
// are at least per apart: the later one started after the earlier one ended
// plus per, and the server receives each call between its start and its
// end, whatever the latency of each. No window of per can hold more than
// calls calls. A token bucket cannot promise this: a full bucket plus its
// refill lets up to twice the budget through one window.
//
// Where the slots are kept is the limiter's book: in process memory
// ([NewLimiter]), or in NATS ([NewBudgetLimiter]), where they survive
// restarts and can be shared by every replica that names the same budget.
//
// Waiters are served by priority, then first come first served; only the
// first waiter asks the book for a slot. Pause stops all grants until a
// time, for when the server says the limit was hit. The zero value is not
// usable. Safe for concurrent use.
type Limiter struct {
	book book
	now  func() time.Time

	mu          sync.Mutex
	pausedUntil time.Time
	probing     bool // after an outage pause: one call at a time until Resume
	taking      bool // the first waiter is asking the book
	inFlight    int
	waiters     waitQueue
	seq         uint64
	changed     chan struct{} // closed and replaced on every change
}

// book keeps the slots of a budget.
type book interface {
	// take takes a slot for a call that starts now. It returns the function
	// that marks the call ended, or, when no slot is free, how long until it
	// is worth asking again (0: once a call of this process ends). take may
	// block on I/O, bounded by ctx; an error means no slot was taken.
	take(ctx context.Context) (release func(), wait time.Duration, err error)
	// available returns how many slots could be taken now, from what the
	// book knows without I/O.
	available() int
}

// NewLimiter returns a limiter of calls per window whose slots live in
// process memory. now may be nil for time.Now.
func NewLimiter(calls int, per time.Duration, now func() time.Time) *Limiter {
	if calls < 1 {
		calls = 1
	}
	if now == nil {
		now = time.Now
	}
	return newLimiter(&ring{calls: calls, per: per, now: now, slots: make([]slot, calls)}, now)
}

// NewBudgetLimiter returns a limiter whose slots are those of b.
func NewBudgetLimiter(b *Budget) *Limiter { return newLimiter(b, time.Now) }

func newLimiter(b book, now func() time.Time) *Limiter {
	return &Limiter{book: b, now: now, changed: make(chan struct{})}
}

// Acquire waits until a call may start, with priority rank prio (0 is
// highest). It returns a release function that must be called when the call
// has finished, whatever its outcome. An error means no call may be made.
func (l *Limiter) Acquire(ctx context.Context, prio int) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.seq++
	w := &waiter{prio: prio, seq: l.seq}
	heap.Push(&l.waiters, w)
	for {
		// Taken before asking the book: a call that ends while the book
		// answers "full" closes this channel, so its end is not missed.
		ch := l.changed
		wait, ask := l.turnLocked(w)
		if ask {
			l.taking = true
			l.mu.Unlock()
			rel, d, err := l.book.take(ctx)
			l.mu.Lock()
			l.taking = false
			switch {
			case err != nil:
				heap.Remove(&l.waiters, w.index)
				l.notifyLocked()
				l.mu.Unlock()
				return nil, err
			case rel != nil:
				heap.Remove(&l.waiters, w.index)
				l.inFlight++
				l.notifyLocked()
				l.mu.Unlock()
				var once sync.Once
				return func() { once.Do(func() { rel(); l.ended() }) }, nil
			case l.waiters[0] != w:
				// A waiter of higher priority came while the book was
				// asked: it is first now, and waits for this change.
				l.notifyLocked()
			}
			wait = d
		}
		l.mu.Unlock()
		if err := l.wait(ctx, ch, wait); err != nil {
			l.mu.Lock()
			heap.Remove(&l.waiters, w.index)
			l.notifyLocked()
			l.mu.Unlock()
			return nil, err
		}
		l.mu.Lock()
	}
}

// turnLocked says whether w may ask the book for a slot now, or else how
// long to wait before looking again (0: wait for a change).
func (l *Limiter) turnLocked(w *waiter) (time.Duration, bool) {
	if l.waiters[0] != w || l.taking {
		return 0, false
	}
	if now := l.now(); now.Before(l.pausedUntil) {
		return l.pausedUntil.Sub(now), false
	}
	if l.probing && l.inFlight > 0 {
		return 0, false
	}
	return 0, true
}

// wait blocks until the limiter changes, d passes (if positive), or ctx is done.
func (l *Limiter) wait(ctx context.Context, changed <-chan struct{}, d time.Duration) error {
	var timeout <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-changed:
	case <-timeout:
	}
	return nil
}

func (l *Limiter) ended() {
	l.mu.Lock()
	l.inFlight--
	l.notifyLocked()
	l.mu.Unlock()
}

// Pause stops all grants until t. A later pause extends an earlier one.
func (l *Limiter) Pause(until time.Time) {
	l.mu.Lock()
	if until.After(l.pausedUntil) {
		l.pausedUntil = until
	}
	l.notifyLocked()
	l.mu.Unlock()
}

// PauseAndProbe stops all grants until t, then lets calls through one at a
// time until Resume: after an outage, one call finds out whether the service
// is back, instead of every waiting worker at once.
func (l *Limiter) PauseAndProbe(until time.Time) {
	l.mu.Lock()
	if until.After(l.pausedUntil) {
		l.pausedUntil = until
	}
	l.probing = true
	l.notifyLocked()
	l.mu.Unlock()
}

// Resume ends probing: the service answered, calls flow again.
func (l *Limiter) Resume() {
	l.mu.Lock()
	if l.probing {
		l.probing = false
		l.notifyLocked()
	}
	l.mu.Unlock()
}

// Available returns how many calls could start now without waiting.
func (l *Limiter) Available() int {
	l.mu.Lock()
	paused := l.now().Before(l.pausedUntil)
	l.mu.Unlock()
	if paused {
		return 0
	}
	return l.book.available()
}

func (l *Limiter) notifyLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// ring is the book of a limiter in process memory: the slots are reused in
// the order they were taken, so the slot to take next is always the one
// whose call is the oldest.
type ring struct {
	calls int
	per   time.Duration
	now   func() time.Time

	mu    sync.Mutex
	slots []slot // in take order
	next  int    // slot of the next take
}

type slot struct {
	used     bool
	inFlight bool
	done     time.Time
}

func (r *ring) take(context.Context) (func(), time.Duration, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	s := r.slots[r.next]
	if s.used && s.inFlight {
		return nil, 0, nil
	}
	if free := s.done.Add(r.per); s.used && now.Before(free) {
		return nil, free.Sub(now), nil
	}
	i := r.next
	r.slots[i] = slot{used: true, inFlight: true}
	r.next = (r.next + 1) % r.calls
	return func() {
		r.mu.Lock()
		r.slots[i] = slot{used: true, done: r.now()}
		r.mu.Unlock()
	}, 0, nil
}

func (r *ring) available() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	n := 0
	for k := 0; k < r.calls; k++ {
		s := r.slots[(r.next+k)%r.calls]
		if s.used && (s.inFlight || now.Before(s.done.Add(r.per))) {
			break
		}
		n++
	}
	return n
}

type waiter struct {
	prio  int
	seq   uint64
	index int
}

type waitQueue []*waiter

func (q waitQueue) Len() int { return len(q) }
func (q waitQueue) Less(i, j int) bool {
	if q[i].prio != q[j].prio {
		return q[i].prio < q[j].prio
	}
	return q[i].seq < q[j].seq
}
func (q waitQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index = i
	q[j].index = j
}
func (q *waitQueue) Push(x any) {
	w := x.(*waiter)
	w.index = len(*q)
	*q = append(*q, w)
}
func (q *waitQueue) Pop() any {
	old := *q
	w := old[len(old)-1]
	*q = old[:len(old)-1]
	return w
}

package actions

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// Limiter keeps calls inside a budget of Calls in any window of Per, exactly.
//
// It remembers the last Calls grants in the order they were given. A new
// grant reuses the slot of the grant Calls places before it, and only once
// that call has finished and Per has passed since. Because grants are given
// in order and the server receives each call between its grant and its end,
// any Calls+1 calls seen by the server span more than Per, whatever the
// latency of each. A token bucket cannot promise this: a full bucket plus its
// refill lets up to twice the budget through one window.
//
// Waiters are served by priority, then first come first served. Pause stops
// all grants until a time, for when the server says the limit was hit.
// The zero value is not usable; use NewLimiter. Safe for concurrent use.
type Limiter struct {
	calls int
	per   time.Duration
	now   func() time.Time

	mu          sync.Mutex
	slots       []slot // ring, in grant order
	next        int    // slot of the next grant
	pausedUntil time.Time
	probing     bool // after an outage pause: one call at a time until Resume
	inFlight    int
	waiters     waitQueue
	seq         uint64
	changed     chan struct{} // closed and replaced on every change
}

type slot struct {
	used     bool
	inFlight bool
	done     time.Time
}

// NewLimiter returns a limiter of calls per window. now may be nil for time.Now.
func NewLimiter(calls int, per time.Duration, now func() time.Time) *Limiter {
	if calls < 1 {
		calls = 1
	}
	if now == nil {
		now = time.Now
	}
	return &Limiter{calls: calls, per: per, now: now, slots: make([]slot, calls), changed: make(chan struct{})}
}

// Acquire waits until a call may start, with priority rank prio (0 is
// highest). It returns a release function that must be called when the call
// has finished, whatever its outcome.
func (l *Limiter) Acquire(ctx context.Context, prio int) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.seq++
	w := &waiter{prio: prio, seq: l.seq}
	heap.Push(&l.waiters, w)
	for {
		wait, ok := l.readyLocked(w)
		if ok {
			heap.Remove(&l.waiters, w.index)
			i := l.next
			l.slots[i] = slot{used: true, inFlight: true}
			l.inFlight++
			l.next = (l.next + 1) % l.calls
			l.notifyLocked()
			l.mu.Unlock()
			var once sync.Once
			return func() { once.Do(func() { l.release(i) }) }, nil
		}
		ch := l.changed
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

// readyLocked says whether w may be granted now, or else how long to wait
// before looking again (0: wait for a change, such as a call finishing).
func (l *Limiter) readyLocked(w *waiter) (time.Duration, bool) {
	if l.waiters[0] != w {
		return 0, false
	}
	now := l.now()
	if now.Before(l.pausedUntil) {
		return l.pausedUntil.Sub(now), false
	}
	if l.probing && l.inFlight > 0 {
		return 0, false
	}
	s := l.slots[l.next]
	if !s.used {
		return 0, true
	}
	if s.inFlight {
		return 0, false
	}
	if free := s.done.Add(l.per); now.Before(free) {
		return free.Sub(now), false
	}
	return 0, true
}

func (l *Limiter) release(i int) {
	l.mu.Lock()
	l.slots[i] = slot{used: true, done: l.now()}
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
	defer l.mu.Unlock()
	now := l.now()
	if now.Before(l.pausedUntil) {
		return 0
	}
	n := 0
	for k := 0; k < l.calls; k++ {
		s := l.slots[(l.next+k)%l.calls]
		if s.used && (s.inFlight || now.Before(s.done.Add(l.per))) {
			break
		}
		n++
	}
	return n
}

func (l *Limiter) notifyLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
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

package actions

import (
	"sync"

	"github.com/comm100bot/bot/internal/job"
)

// waiting holds the jobs fetched for the workers and not taken yet, the
// most urgent first: priority high, then normal, then low (job.Rank), each
// in the order fetched. The limiter orders the calls of the workers by
// priority; waiting orders the jobs behind them, so a high job fetched
// behind a hundred normal ones is the next a worker takes (a job parked for
// its host goes in when a place comes: see lane.next).
type waiting struct {
	mu     sync.Mutex
	more   sync.Cond // signalled on a push and on close
	ranks  [job.Ranks][]task
	closed bool
}

func newWaiting() *waiting {
	w := &waiting{}
	w.more.L = &w.mu
	return w
}

// push adds a task. After close, only a worker that pops again may push.
func (w *waiting) push(t task) {
	r := job.Rank(t.job.Priority)
	w.mu.Lock()
	w.ranks[r] = append(w.ranks[r], t)
	w.mu.Unlock()
	w.more.Signal()
}

// pop takes the most urgent task, waiting for one; ok is false once the
// queue is closed and empty.
func (w *waiting) pop() (t task, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.lenLocked() == 0 && !w.closed {
		w.more.Wait()
	}
	for r := range w.ranks {
		if q := w.ranks[r]; len(q) > 0 {
			t = q[0]
			q[0] = task{}
			w.ranks[r] = q[1:]
			if len(w.ranks[r]) == 0 {
				w.ranks[r] = nil
			}
			return t, true
		}
	}
	return task{}, false
}

// len is how many tasks wait.
func (w *waiting) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lenLocked()
}

func (w *waiting) lenLocked() int { return len(w.ranks[0]) + len(w.ranks[1]) + len(w.ranks[2]) }

// close wakes every pop: they take what is left, then return false.
func (w *waiting) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.more.Broadcast()
}

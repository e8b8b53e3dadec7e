package rules

import (
	"sync"
	"time"
)

// throttle lets one log line through per period and counts the ones it held
// back, so that a fault repeated for every event is logged, not flooded.
// Its zero value lets every line through.
type throttle struct {
	every time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// allow reports whether a line may be logged at now, and how many were held
// back since the last one that was.
func (t *throttle) allow(now time.Time) (bool, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.last.IsZero() && now.Sub(t.last) < t.every {
		t.suppressed++
		return false, 0
	}
	n := t.suppressed
	t.last, t.suppressed = now, 0
	return true, n
}

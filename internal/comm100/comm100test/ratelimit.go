package comm100test

import (
	"fmt"
	"net/http"
	"sync"
	"time"
)

// slidingWindow admits at most calls per client IP in any window of per: a
// call at time t is admitted when fewer than calls admitted calls of that IP
// happened in (t-per, t]. Refused calls do not count; token calls do
// (neither is documented: see SOURCES.md).
type slidingWindow struct {
	calls int
	per   time.Duration

	mu   sync.Mutex
	hits map[string][]time.Time // per IP, admitted call times, oldest first
}

func newSlidingWindow(calls int, per time.Duration) *slidingWindow {
	return &slidingWindow{calls: calls, per: per, hits: map[string][]time.Time{}}
}

// allow admits or refuses one call of ip at now.
func (l *slidingWindow) allow(ip string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	ts := l.hits[ip]
	i := 0
	for i < len(ts) && !ts[i].After(now.Add(-l.per)) {
		i++
	}
	ts = ts[i:]
	if len(ts) >= l.calls {
		l.hits[ip] = ts
		return false
	}
	l.hits[ip] = append(ts, now)
	// Forget idle IPs now and then so the map stays bounded.
	if len(l.hits) > 1024 {
		for k, v := range l.hits {
			if len(v) == 0 || !v[len(v)-1].After(now.Add(-l.per)) {
				delete(l.hits, k)
			}
		}
	}
	return true
}

// refuse answers the call over the limit as Comm100 does: 403 with a body
// that says the limit was exceeded.
func (l *slidingWindow) refuse(w http.ResponseWriter) {
	writeError(w, http.StatusForbidden, 403000,
		fmt.Sprintf("The request limit was exceeded: at most %d calls per %s from one client IP.", l.calls, l.per))
}

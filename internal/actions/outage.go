package actions

import (
	"math/rand/v2"
	"sync"
	"time"
)

// outageBackoff turns transient Comm100 failures seen by any worker into one
// pause of the whole pool, growing with every failure in a row and reset by
// the first success. Without it, every job in the queue would start its own
// backoff from the beginning, and an outage would meet a steady stream of
// calls instead of a thinning one. The zero value is ready to use.
type outageBackoff struct {
	mu       sync.Mutex
	failures int
}

const (
	outageBase = 250 * time.Millisecond
	outageMax  = 30 * time.Second
)

// fail records a failure and returns how long the pool should pause: the
// base doubled for every failure in a row, capped, with jitter in [d/2, d].
func (o *outageBackoff) fail() time.Duration {
	o.mu.Lock()
	o.failures++
	n := o.failures
	o.mu.Unlock()
	d := outageBase
	for i := 1; i < n && d < outageMax; i++ {
		d *= 2
	}
	d = min(d, outageMax)
	return d/2 + rand.N(d/2+1)
}

// ok records a success: the service is back.
func (o *outageBackoff) ok() {
	o.mu.Lock()
	o.failures = 0
	o.mu.Unlock()
}

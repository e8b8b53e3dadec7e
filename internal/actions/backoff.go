package actions

import (
	"math/rand/v2"
	"time"
)

// Backoff is a delay that grows with every failure in a row. It is the one
// schedule behind every wait of the pool: retries inside a delivery, the
// delay of a job handed back to JetStream, the pause of the whole pool while
// Comm100 fails, and the waits between tries to reach NATS.
//
// The zero value works: 250ms after the first failure, doubling to 30s,
// jittered. Delay is a pure function of the failure count, so a caller keeps
// no state but the count, and tests can tabulate it.
type Backoff struct {
	// Base is the delay after the first failure. Zero means 250ms.
	Base time.Duration
	// Max caps the delay before jitter. Zero means 30s.
	Max time.Duration
	// Jitter is the share of the delay that is random: the delay d becomes
	// a value in [d-Jitter*d, d]. Zero means 0.5; a negative value turns
	// jitter off. Without it, jobs that failed together would all come back
	// together and fail together again.
	Jitter float64
	// Rand returns a number in [0, 1); nil uses math/rand/v2. Tests fix it.
	Rand func() float64
}

// Delay returns how long to wait after the failures-th failure in a row:
// 0 for none, Base for the first, doubling up to Max, then jittered.
func (b Backoff) Delay(failures int) time.Duration {
	if failures <= 0 {
		return 0
	}
	base, most := b.Base, b.Max
	if base <= 0 {
		base = 250 * time.Millisecond
	}
	if most <= 0 {
		most = 30 * time.Second
	}
	d := base
	// Doubling stops at the cap, so a long streak cannot overflow.
	for i := 1; i < failures && d < most; i++ {
		d *= 2
	}
	d = min(d, most)
	jitter := b.Jitter
	switch {
	case jitter == 0:
		jitter = 0.5
	case jitter < 0:
		return d
	case jitter > 1:
		jitter = 1
	}
	r := b.Rand
	if r == nil {
		r = rand.Float64
	}
	return d - time.Duration(jitter*r()*float64(d))
}

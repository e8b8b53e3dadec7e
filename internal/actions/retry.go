package actions

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"time"

	"github.com/comm100bot/bot/internal/comm100"
)

// Retryable reports whether a failed attempt may succeed if tried again:
// Comm100 rate limits and server errors, timeouts and connection failures.
// Errors wrapped with Permanent, and client errors such as 400 or 404, are not.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var pe *permanentError
	if errors.As(err, &pe) {
		return false
	}
	if errors.Is(err, comm100.ErrNotStoredYet) {
		// A chat or offline message looked up by the GUID of its webhook,
		// which Comm100 stores some seconds later.
		return true
	}
	var ae *comm100.APIError
	if errors.As(err, &ae) {
		return ae.Temporary()
	}
	var he *HTTPError
	if errors.As(err, &he) {
		return he.Temporary()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe)
}

// rateLimitPause says how long the whole pool should pause after err: the
// server's Retry-After when it sent one, else def; 0 if err is not a rate limit.
func rateLimitPause(err error, def time.Duration) time.Duration {
	var ae *comm100.APIError
	if !errors.As(err, &ae) || !ae.RateLimited() {
		return 0
	}
	if d, ok := ae.RetryAfterDelay(); ok {
		return d
	}
	return def
}

// redeliveryDelay is how long a job waits in JetStream before its next
// delivery, after n deliveries that failed transiently: exponential from
// base, capped at max, with jitter in [d/2, d] so that jobs that failed
// together do not come back together.
func redeliveryDelay(n uint64, base, max time.Duration) time.Duration {
	d := base
	for i := uint64(1); i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

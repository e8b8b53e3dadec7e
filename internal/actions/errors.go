package actions

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/comm100bot/bot/internal/comm100"
)

// Retryable reports whether a failed attempt may succeed if tried again:
// answers that say so ([comm100.APIError] and [HTTPError] with Temporary),
// calls that got no whole answer ([comm100.TransportError], a closed or
// reset connection, a timeout), cancellations, the budget or the bot's own
// NATS out of reach, and errors wrapped with [Transient]. Errors wrapped
// with [Permanent], parameter errors, and client errors such as 400 or 404
// are not.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var pe *permanentError
	if errors.As(err, &pe) {
		return false
	}
	var pae *ParamError
	if errors.As(err, &pae) {
		return false
	}
	var te *transientError
	var ce *comm100.TransportError
	if errors.As(err, &te) || errors.As(err, &ce) || errors.Is(err, ErrBudgetUnavailable) {
		return true
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
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe)
}

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// transientError marks an error that passes: a call that got no answer,
// the bot's own NATS out of reach.
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// Transient wraps err so that the pool retries it.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &transientError{err: err}
}

// Permanent wraps err so that the pool does not retry it.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// RetryAfterError is an answer in which the server said when to try again
// (Retry-After). Both [comm100.APIError] and [HTTPError] are one; the pool
// asks for it with [RetryAfter] and waits at least that long.
type RetryAfterError interface {
	error
	RetryAfterDelay() (time.Duration, bool)
}

var (
	_ RetryAfterError = (*comm100.APIError)(nil)
	_ RetryAfterError = (*HTTPError)(nil)
)

// RetryAfter returns the delay the server asked for in err, if it did.
func RetryAfter(err error) (time.Duration, bool) {
	var ra RetryAfterError
	if errors.As(err, &ra) {
		return ra.RetryAfterDelay()
	}
	return 0, false
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date
// (RFC 9110, section 10.2.3). It returns 0 for a missing, malformed or past value.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseUint(v, 10, 31); err == nil {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// rateLimited reports whether err is Comm100 saying the request limit was hit.
func rateLimited(err error) bool {
	var ae *comm100.APIError
	return errors.As(err, &ae) && ae.RateLimited()
}

// comm100Answered reports whether err is an answer from Comm100 (as opposed
// to a local error, a timeout or a broken connection).
func comm100Answered(err error) bool {
	var ae *comm100.APIError
	return errors.As(err, &ae)
}

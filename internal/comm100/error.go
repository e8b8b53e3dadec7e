package comm100

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// APIError is a non-2xx answer from the Comm100 API. Comm100 sends a JSON body
// {"code": 400000, "message": "..."}; Code and Message hold it when present.
type APIError struct {
	Method     string
	Path       string // relative to the API base, without the query
	Status     int
	Code       int
	Message    string
	RetryAfter time.Duration // from a Retry-After header, 0 if none
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "comm100 %s %s: %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
	if e.Code != 0 {
		fmt.Fprintf(&b, " (code %d)", e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// RateLimited reports whether the answer says the request limit was exceeded:
// any 429, and a 403 whose message speaks of a limit (Comm100 answers both
// "permission denied" and "limit exceeded" with 403).
func (e *APIError) RateLimited() bool {
	if e.Status == http.StatusTooManyRequests {
		return true
	}
	if e.Status != http.StatusForbidden {
		return false
	}
	m := strings.ToLower(e.Message)
	return strings.Contains(m, "limit") || strings.Contains(m, "too many") || strings.Contains(m, "exceed")
}

// Temporary reports whether the same call may succeed later: rate limits,
// server errors, and a 403 that might be a rate limit in disguise.
func (e *APIError) Temporary() bool {
	return e.RateLimited() || e.Status >= 500 || e.Status == http.StatusForbidden ||
		e.Status == http.StatusRequestTimeout
}

// RetryAfterDelay returns the server's Retry-After, if it sent one.
func (e *APIError) RetryAfterDelay() (time.Duration, bool) { return e.RetryAfter, e.RetryAfter > 0 }

// IsRateLimited reports whether err is or wraps a rate-limit answer.
func IsRateLimited(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.RateLimited()
}

// IsTemporary reports whether err is or wraps an answer worth retrying.
func IsTemporary(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Temporary()
}

// IsPermanent reports whether err is or wraps an answer that retrying will not change.
func IsPermanent(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && !ae.Temporary()
}

// newAPIError builds the error from a response whose body has been read.
func newAPIError(method, path string, resp *http.Response, body []byte) *APIError {
	e := &APIError{Method: method, Path: path, Status: resp.StatusCode}
	var eb struct {
		Code    json.Number `json:"code"`
		Message string      `json:"message"`
		Error   string      `json:"error"`
	}
	if json.Unmarshal(body, &eb) == nil {
		if n, err := eb.Code.Int64(); err == nil {
			e.Code = int(n)
		}
		e.Message = eb.Message
		if e.Message == "" {
			e.Message = eb.Error
		}
	}
	if e.Message == "" && len(body) > 0 && len(body) <= 200 && !strings.ContainsAny(string(body), "<>") {
		e.Message = strings.TrimSpace(string(body))
	}
	e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	return e
}

// parseRetryAfter reads delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

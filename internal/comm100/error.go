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

// Kinds of failure an *APIError can be asked about with errors.Is, e.g.
// errors.Is(err, comm100.ErrRateLimited). They are never returned bare.
var (
	// ErrRateLimited: the request limit was exceeded (429, or 403 saying so).
	ErrRateLimited = errors.New("comm100: request limit exceeded")
	// ErrTemporary: the same call may succeed later (rate limit, 5xx, 408).
	ErrTemporary = errors.New("comm100: temporary failure")
	// ErrPermanent: retrying the same call will not change the answer.
	ErrPermanent = errors.New("comm100: permanent failure")
	// ErrUnauthorized: the credentials were refused (401).
	ErrUnauthorized = errors.New("comm100: unauthorized")
	// ErrNotFound: the resource does not exist (404).
	ErrNotFound = errors.New("comm100: not found")
)

// TransportError is a call that got no whole answer: the connection could
// not be made, or was closed, reset or timed out, or the answer was cut off.
// The same call may succeed later; if the request had been sent, Comm100
// may have done the work. errors.Is(err, ErrTemporary) holds for it.
type TransportError struct{ Err error }

func (e *TransportError) Error() string { return e.Err.Error() }
func (e *TransportError) Unwrap() error { return e.Err }

// Is makes a TransportError match ErrTemporary.
func (e *TransportError) Is(target error) bool { return target == ErrTemporary }

// APIError is a non-2xx answer from the Comm100 API or its token endpoint.
// Comm100 sends a JSON body {"code": 400000, "message": "..."}; Code and
// Message hold it when present. Keys are matched in any letter case
// ("Message"), and "ErrorMessage" and OAuth's "error"/"error_description"
// are read when "message" is absent.
type APIError struct {
	Method     string
	Path       string // relative to the API base, without the query
	Status     int
	Code       int
	Message    string
	RetryAfter time.Duration // from Retry-After (or X-RateLimit-Reset), 0 if none
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

// Is lets errors.Is ask what kind of failure e is: ErrRateLimited,
// ErrTemporary, ErrPermanent, ErrUnauthorized or ErrNotFound.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrRateLimited:
		return e.RateLimited()
	case ErrTemporary:
		return e.Temporary()
	case ErrPermanent:
		return e.Permanent()
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	}
	return false
}

// limitWords are what a 403 says when it means "request limit exceeded"
// rather than "permission denied".
var limitWords = []string{"limit", "too many", "exceed", "quota", "throttl"}

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
	for _, w := range limitWords {
		if strings.Contains(m, w) {
			return true
		}
	}
	return false
}

// Temporary reports whether the same call may succeed later: rate limits,
// server errors, timeouts, and a 403 without any message, which may be a rate
// limit in disguise. A 403 that says something other than a limit (permission
// denied) is permanent.
func (e *APIError) Temporary() bool {
	switch {
	case e.RateLimited(), e.Status >= 500, e.Status == http.StatusRequestTimeout:
		return true
	case e.Status == http.StatusForbidden:
		return e.Message == ""
	}
	return false
}

// Permanent reports whether retrying the same call cannot help: the opposite
// of Temporary.
func (e *APIError) Permanent() bool { return !e.Temporary() }

// RetryAfterDelay returns the server's Retry-After, if it sent one.
func (e *APIError) RetryAfterDelay() (time.Duration, bool) { return e.RetryAfter, e.RetryAfter > 0 }

// IsRateLimited reports whether err is or wraps a rate-limit answer.
func IsRateLimited(err error) bool { return errors.Is(err, ErrRateLimited) }

// IsTemporary reports whether err is or wraps an answer worth retrying.
func IsTemporary(err error) bool { return errors.Is(err, ErrTemporary) }

// IsPermanent reports whether err is or wraps an answer that retrying will not change.
func IsPermanent(err error) bool { return errors.Is(err, ErrPermanent) }

// newAPIError builds the error from a response whose body has been read.
// scrub removes secrets from anything the server echoed.
func newAPIError(method, path string, resp *http.Response, body []byte, now time.Time, scrub func(string) string) *APIError {
	e := &APIError{Method: method, Path: path, Status: resp.StatusCode}
	var eb struct {
		Code         json.RawMessage `json:"code"`
		Message      string          `json:"message"`
		ErrorMessage string          `json:"errorMessage"`
		Error        string          `json:"error"`
		Description  string          `json:"error_description"`
	}
	// encoding/json matches keys in any letter case: "Message", "ErrorMessage".
	if json.Unmarshal(body, &eb) == nil {
		var code flexNumber
		if len(eb.Code) > 0 && code.UnmarshalJSON(eb.Code) == nil {
			e.Code = int(code)
		}
		e.Message = eb.Message
		if e.Message == "" {
			e.Message = eb.ErrorMessage
		}
		if e.Message == "" {
			e.Message = eb.Error
			if eb.Description != "" {
				e.Message = strings.TrimPrefix(e.Message+": "+eb.Description, ": ")
			}
		}
	}
	if e.Message == "" && len(body) > 0 && len(body) <= 200 && !strings.ContainsAny(string(body), "<>{}") {
		e.Message = strings.TrimSpace(string(body))
	}
	if scrub != nil {
		e.Message = scrub(e.Message)
	}
	e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	if e.RetryAfter == 0 && resp.Header.Get("X-RateLimit-Remaining") == "0" {
		e.RetryAfter = parseRateLimitReset(resp.Header.Get("X-RateLimit-Reset"), now)
	}
	return e
}

// parseRetryAfter reads delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// parseRateLimitReset reads X-RateLimit-Reset, which servers send either as
// seconds from now or as a Unix time in seconds.
func parseRateLimitReset(v string, now time.Time) time.Duration {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n <= 0 {
		return 0
	}
	if n < 1_000_000_000 {
		return time.Duration(n) * time.Second
	}
	if t := time.Unix(n, 0); t.After(now) {
		return t.Sub(now)
	}
	return 0
}

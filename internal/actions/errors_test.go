package actions

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/comm100bot/bot/internal/comm100"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 9, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"7", 7 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"Mon, 09 Mar 2026 12:01:30 GMT", 90 * time.Second},
		{"Monday, 09-Mar-26 12:00:10 GMT", 10 * time.Second}, // RFC 850, which HTTP dates also allow
		{"Mon, 09 Mar 2026 11:59:00 GMT", 0},                 // in the past
		{"-5", 0},
		{"1.5", 0},
		{"soon", 0},
		{"99999999999999", 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q): got %s, want %s", tt.in, got, tt.want)
		}
	}
}

// TestRetryAfterOfBothKinds: the one question "did the server say when to
// retry" is answered for Comm100's errors and for http.request's, wrapped or not.
func TestRetryAfterOfBothKinds(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want time.Duration
		ok   bool
	}{
		{"comm100, wrapped", fmt.Errorf("create ticket: %w", &comm100.APIError{Status: 429, RetryAfter: 9 * time.Second}), 9 * time.Second, true},
		{"comm100 without", &comm100.APIError{Status: 503}, 0, false},
		{"http.request, wrapped", fmt.Errorf("POST x: %w", &HTTPError{Status: 503, RetryAfter: time.Minute}), time.Minute, true},
		{"http.request without", &HTTPError{Status: 503}, 0, false},
		{"neither", errors.New("x"), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := RetryAfter(tt.err)
			if got != tt.want || ok != tt.ok {
				t.Errorf("got %s %v, want %s %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestHTTPRequestReadsRetryAfter calls a real server answering 429 and 503
// with both forms of Retry-After.
func TestHTTPRequestReadsRetryAfter(t *testing.T) {
	date := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/date" {
			w.Header().Set("Retry-After", date)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Retry-After", "42")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, "slow down")
	}))
	defer srv.Close()
	h := NewHTTPCaller(srv.Client(), 10, time.Second, 5*time.Second)

	_, err := h.do(t.Context(), Params{"url": srv.URL + "/secs"})
	var he *HTTPError
	if !errors.As(err, &he) || he.Status != 429 || he.Host != srv.Listener.Addr().String() || !he.Temporary() {
		t.Fatalf("got %v, want a temporary 429 from %s", err, srv.Listener.Addr())
	}
	if d, ok := RetryAfter(err); !ok || d != 42*time.Second {
		t.Errorf("seconds form: got %s %v, want 42s", d, ok)
	}
	_, err = h.do(t.Context(), Params{"url": srv.URL + "/date"})
	if d, ok := RetryAfter(err); !ok || d < 59*time.Minute || d > time.Hour {
		t.Errorf("date form: got %s %v, want about 1h", d, ok)
	}
}

// TestHTTPCallerPausesOneHost: a pause of one host holds its calls and no
// other host's.
func TestHTTPCallerPausesOneHost(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	h := NewHTTPCaller(srv.Client(), 10, time.Second, 5*time.Second)
	h.Pause("paused.example", time.Now().Add(time.Hour))
	if _, err := h.do(t.Context(), Params{"url": srv.URL}); err != nil {
		t.Fatalf("another host's call: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := h.do(ctx, Params{"url": "http://paused.example/x"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("paused host's call: got %v, want it held until its context ended", err)
	}
}

func TestRetryable(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"comm100 503", &comm100.APIError{Status: 503}, true},
		{"comm100 429", &comm100.APIError{Status: 429}, true},
		{"comm100 bare 403", &comm100.APIError{Status: 403}, true},
		{"comm100 403 permission denied", &comm100.APIError{Status: 403, Message: "Permission denied."}, false},
		{"comm100 404", &comm100.APIError{Status: 404}, false},
		{"chat not stored yet", fmt.Errorf("x: %w", comm100.ErrNotStoredYet), true},
		{"http 502", &HTTPError{Status: 502}, true},
		{"http 422", &HTTPError{Status: 422}, false},
		{"timeout", fmt.Errorf("x: %w", context.DeadlineExceeded), true},
		{"cancelled", context.Canceled, true},
		{"connection refused", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, true},
		{"comm100 connection closed", fmt.Errorf("x: %w", &comm100.TransportError{Err: io.EOF}), true},
		{"budget out of reach", fmt.Errorf("x: %w: %w", ErrBudgetUnavailable, errors.New("nats: timeout")), true},
		{"transient", Transient(errors.New("nats: no responders")), true},
		{"permanent wraps a transient", Permanent(Transient(errors.New("x"))), false},
		{"permanent wraps a 503", Permanent(&comm100.APIError{Status: 503}), false},
		{"param error", &ParamError{Param: "x", Err: errors.New("bad")}, false},
		{"plain error", errors.New("x"), false},
	}
	for _, tt := range tests {
		if got := Retryable(tt.err); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

package comm100

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/comm100bot/bot/internal/comm100/comm100test"
)

func TestAPIErrorClassification(t *testing.T) {
	tests := []struct {
		status                           int
		msg                              string
		rateLimited, temporary, notFound bool
	}{
		{400, "Parameter 'subject' is required.", false, false, false},
		{401, "Authorization has been denied for this request.", false, false, false},
		{403, "The request limit was exceeded.", true, true, false},
		{403, "Too many requests", true, true, false},
		{403, "Permission denied.", false, false, false},
		{403, "", false, true, false},
		{404, "Ticket not found.", false, false, true},
		{408, "", false, true, false},
		{429, "", true, true, false},
		{500, "boom", false, true, false},
		{503, "", false, true, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d %s", tt.status, tt.msg), func(t *testing.T) {
			var err error = fmt.Errorf("create ticket: %w", &APIError{Status: tt.status, Message: tt.msg})
			got := [5]bool{IsRateLimited(err), IsTemporary(err), IsPermanent(err), errors.Is(err, ErrNotFound), errors.Is(err, ErrTemporary)}
			want := [5]bool{tt.rateLimited, tt.temporary, !tt.temporary, tt.notFound, tt.temporary}
			if got != want {
				t.Errorf("rate limited, temporary, permanent, not found, Is(ErrTemporary): got %v, want %v", got, want)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 17, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		header http.Header
		want   time.Duration
	}{
		{"seconds", http.Header{"Retry-After": {"120"}}, 2 * time.Minute},
		{"http date", http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}}, 90 * time.Second},
		{"date in the past", http.Header{"Retry-After": {now.Add(-time.Minute).Format(http.TimeFormat)}}, 0},
		{"garbage", http.Header{"Retry-After": {"soon"}}, 0},
		{"rate limit reset, seconds", http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {"30"}}, 30 * time.Second},
		{"rate limit reset, unix time", http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {fmt.Sprint(now.Add(time.Minute).Unix())}}, time.Minute},
		{"reset while calls remain", http.Header{"X-Ratelimit-Remaining": {"5"}, "X-Ratelimit-Reset": {"30"}}, 0},
		{"none", http.Header{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: 429, Header: tt.header}
			e := newAPIError("GET", "x", resp, nil, now, nil)
			if e.RetryAfter != tt.want {
				t.Errorf("got %s, want %s", e.RetryAfter, tt.want)
			}
			if d, ok := e.RetryAfterDelay(); ok != (tt.want > 0) || d != tt.want {
				t.Errorf("RetryAfterDelay: got %s %v", d, ok)
			}
		})
	}
}

// TestErrorsOverHTTP drives every error answer of the simulator through the
// client and checks what the pool will see.
func TestErrorsOverHTTP(t *testing.T) {
	clock := newClock()
	tests := []struct {
		name      string
		sim       comm100test.Config
		call      func(*Client) error
		status    int
		code      int
		msg       string
		temporary bool
		limited   bool
	}{
		{
			name: "validation",
			call: func(c *Client) error {
				_, err := c.CreateTicket(t.Context(), NewTicket{Subject: "x", Priority: "critical"})
				return err
			},
			status: 400, code: 400000, msg: "Parameter 'priority' must be one of urgent, high, normal, low.",
		},
		{
			name: "unknown ticket",
			call: func(c *Client) error {
				_, err := c.UpdateTicket(t.Context(), "4242", TicketUpdate{Status: "resolved"})
				return err
			},
			status: 404, code: 404000, msg: "Ticket not found.",
		},
		{
			name:   "server error",
			sim:    comm100test.Config{Faults: comm100test.Faults{FailRate: 1}},
			call:   func(c *Client) error { _, err := c.Tags(t.Context()); return err },
			status: 500, code: 500000, msg: "simulated", temporary: true,
		},
		{
			name:   "outage",
			sim:    comm100test.Config{Now: clock.Now, Faults: comm100test.Faults{OutageFrom: clock.Now(), OutageFor: time.Minute}},
			call:   func(c *Client) error { _, err := c.Tags(t.Context()); return err },
			status: 503, code: 503000, msg: "outage", temporary: true,
		},
		{
			name:   "rate limit",
			sim:    comm100test.Config{RateLimit: comm100test.IPRateLimit{Calls: 1, Per: time.Hour}},
			call:   func(c *Client) error { _, _ = c.Tags(t.Context()); _, err := c.Tags(t.Context()); return err },
			status: 403, code: 403000, msg: "limit was exceeded", temporary: true, limited: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOpt{sim: tt.sim})
			err := tt.call(e.client)
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("got %v, want *APIError", err)
			}
			if ae.Status != tt.status || ae.Code != tt.code || !strings.Contains(ae.Message, tt.msg) {
				t.Errorf("got %d %d %q, want %d %d and a message containing %q", ae.Status, ae.Code, ae.Message, tt.status, tt.code, tt.msg)
			}
			if IsTemporary(err) != tt.temporary || IsRateLimited(err) != tt.limited || IsPermanent(err) == tt.temporary {
				t.Errorf("temporary %v, rate limited %v; want %v, %v", IsTemporary(err), IsRateLimited(err), tt.temporary, tt.limited)
			}
			// No retries in the client: one call per client call.
			calls := 0
			for _, r := range e.sim.Requests() {
				if r.Status == tt.status {
					calls++
				}
			}
			if calls != 1 {
				t.Errorf("got %d answers %d, want exactly 1", calls, tt.status)
			}
		})
	}
}

func TestTransportErrorIsNotAPIError(t *testing.T) {
	hs := httptest.NewServer(http.NotFoundHandler())
	hs.Close()
	c, err := New(Config{BaseURL: hs.URL + "/v4/", SiteID: "1", Email: "a@b.c", APIKey: "k"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Tags(t.Context())
	var ae *APIError
	if err == nil || errors.As(err, &ae) || strings.Contains(err.Error(), "siteId") {
		t.Errorf("got %v, want a transport error without the URL", err)
	}
}

// TestErrorBodies reads the error bodies Comm100 answers with in the letter
// cases and names seen: {code, message}, "Message", "ErrorMessage", a code
// sent as a string, and OAuth's error/error_description.
func TestErrorBodies(t *testing.T) {
	tests := []struct {
		body string
		code int
		msg  string
	}{
		{`{"code":400000,"message":"Parameter 'timeFrom' is required."}`, 400000, "Parameter 'timeFrom' is required."},
		{`{"Code":400000,"Message":"The request is invalid."}`, 400000, "The request is invalid."},
		{`{"ErrorMessage":"Ticket not found."}`, 0, "Ticket not found."},
		{`{"errorMessage":"Ticket not found.","message":""}`, 0, "Ticket not found."},
		{`{"code":"404000","message":"Not found."}`, 404000, "Not found."},
		{`{"code":"E42","message":"Odd code."}`, 0, "Odd code."},
		{`{"error":"invalid_grant","error_description":"The refresh token is not valid."}`, 0, "invalid_grant: The refresh token is not valid."},
		{`Bad Request`, 0, "Bad Request"},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			resp := &http.Response{StatusCode: http.StatusBadRequest, Header: http.Header{}}
			e := newAPIError(http.MethodPost, "ticketing/tickets", resp, []byte(tt.body), time.Now(), nil)
			if e.Code != tt.code || e.Message != tt.msg {
				t.Errorf("got code %d message %q, want %d %q", e.Code, e.Message, tt.code, tt.msg)
			}
		})
	}
}

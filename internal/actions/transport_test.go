package actions

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/comm100bot/bot/internal/comm100"
)

// A call that waited for the budget still gets its whole timeout: the wait
// must not leave it too little time once the server has done the work.
func TestLimitedTransportTimeoutStartsAtTheGrant(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(150 * time.Millisecond) // a slow answer
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	lim := NewLimiter(1, 600*time.Millisecond, nil)
	hc := &http.Client{Transport: &LimitedTransport{Limiter: lim, Timeout: 400 * time.Millisecond}}
	for i := range 2 {
		start := time.Now()
		resp, err := hc.Get(srv.URL)
		if err != nil {
			t.Fatalf("call %d after %s: %v", i, time.Since(start), err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "ok" {
			t.Fatalf("call %d: body %q", i, body)
		}
	}
}

func TestLimitedTransportBoundsTheCall(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	hc := &http.Client{Transport: &LimitedTransport{Limiter: NewLimiter(10, time.Second, nil), Timeout: 100 * time.Millisecond}}
	_, err := hc.Get(srv.URL)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a deadline error", err)
	}
	if !Retryable(err) {
		t.Error("a timed-out call should be retryable")
	}
}

func TestHTTPRequestAction(t *testing.T) {
	var got struct {
		method, ctype, body, auth string
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.method, got.ctype, got.body, got.auth = r.Method, r.Header.Get("Content-Type"), string(b), r.Header.Get("Authorization")
		switch r.URL.Path {
		case "/busy":
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
		case "/bad":
			w.WriteHeader(http.StatusBadRequest)
		default:
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"ok":true}`)
		}
	}))
	defer srv.Close()
	rt := &Runtime{HTTP: NewHTTPCaller(nil, 100, time.Minute, time.Second)}
	act, _ := NewCatalog().Lookup("http.request")

	res, err := act.Run(t.Context(), rt, Params{"url": srv.URL + "/hook", "body": map[string]any{"a": 1},
		"headers": map[string]any{"Authorization": "Bearer x"}})
	if err != nil {
		t.Fatal(err)
	}
	if got.method != "POST" || got.ctype != "application/json" || got.body != `{"a":1}` || got.auth != "Bearer x" {
		t.Errorf("request: %+v", got)
	}
	if res["status"] != 200 || res["body"].(map[string]any)["ok"] != true {
		t.Errorf("result: %v", res)
	}

	tests := []struct {
		path      string
		retryable bool
	}{{"/busy", true}, {"/bad", false}}
	for _, tt := range tests {
		_, err := act.Run(t.Context(), rt, Params{"url": srv.URL + tt.path, "method": "get"})
		var he *HTTPError
		if !errors.As(err, &he) || Retryable(err) != tt.retryable {
			t.Errorf("%s: got %v (retryable %v), want retryable %v", tt.path, err, Retryable(err), tt.retryable)
		}
	}
	if _, err := act.Run(t.Context(), rt, Params{"url": "ftp://x"}); Retryable(err) || err == nil {
		t.Errorf("bad url: got %v, want a permanent error", err)
	}
}

// Each host has its own budget: one busy host does not hold back another.
func TestHTTPCallerLimitsPerHost(t *testing.T) {
	h := NewHTTPCaller(nil, 1, time.Hour, time.Second)
	a, b := h.limiter("a.example"), h.limiter("b.example")
	if a == b {
		t.Fatal("two hosts share a limiter")
	}
	if h.limiter("a.example") != a {
		t.Fatal("one host got two limiters")
	}
	r, _ := a.Acquire(t.Context(), 1)
	r()
	if a.Available() != 0 || b.Available() != 1 {
		t.Errorf("available: a %d b %d, want 0 and 1", a.Available(), b.Available())
	}
}

// A call that got no whole answer is retried, never given up as permanent:
// a load balancer closing a kept-alive connection as a POST goes out, an
// answer cut off, the shared budget out of reach. The errors are made by
// the real clients (Comm100's and http.request's) over real connections.
func TestCallsWithoutAWholeAnswerAreRetried(t *testing.T) {
	var mode atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch mode.Load() {
		case "close":
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		case "cut":
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, `{"id":`)
			panic(http.ErrAbortHandler)
		}
	}))
	defer srv.Close()
	budgetDown := roundTripFunc(func(*http.Request) (*http.Response, error) {
		return nil, fmt.Errorf("%w: %w", ErrBudgetUnavailable, errors.New("nats: timeout"))
	})
	client := func(hc *http.Client) *comm100.Client {
		c, err := comm100.New(comm100.Config{BaseURL: srv.URL, SiteID: "10000", Email: "a@example.com", APIKey: "key-1234"}, hc)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	calls := []struct {
		name, mode string
		call       func() error
		comm100    bool
	}{
		{"Comm100, connection closed", "close", func() error {
			_, err := client(nil).CreateTicket(t.Context(), comm100.NewTicket{Subject: "x"})
			return err
		}, true},
		{"Comm100, answer cut off", "cut", func() error {
			_, err := client(nil).CreateTicket(t.Context(), comm100.NewTicket{Subject: "x"})
			return err
		}, true},
		{"Comm100, budget out of reach", "", func() error {
			_, err := client(&http.Client{Transport: budgetDown}).CreateTicket(t.Context(), comm100.NewTicket{Subject: "x"})
			return err
		}, true},
		{"http.request, connection closed", "close", func() error {
			_, err := NewHTTPCaller(nil, 10, time.Second, time.Second).do(t.Context(), Params{"url": srv.URL + "/hook"})
			return err
		}, false},
	}
	p := testPolicy()
	now := time.Now()
	for _, c := range calls {
		mode.Store(c.mode)
		err := c.call()
		if err == nil {
			t.Fatalf("%s: no error", c.name)
		}
		if !Retryable(err) {
			t.Errorf("%s: %v is not retryable", c.name, err)
		}
		d := p.Decide(Facts{Now: now, Due: now, Delivery: 1, Started: now, Err: err, Comm100: c.comm100,
			History: []Attempt{newAttempt(now, now, 1, err)}})
		if d.Verdict != Retry {
			t.Errorf("%s: %v: verdict %s (%s), want a retry", c.name, err, d.Verdict, d.Reason)
		}
		if strings.Contains(err.Error(), "/hook") || strings.Contains(err.Error(), "key-1234") {
			t.Errorf("%s: error %q names the URL's path or the key", c.name, err)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

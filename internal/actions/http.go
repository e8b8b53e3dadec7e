package actions

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// HTTPCaller carries out http.request actions. Every host has its own
// limiter, so an outside system cannot eat the Comm100 budget, nor one
// outside system another's. Safe for concurrent use.
type HTTPCaller struct {
	client  *http.Client
	calls   int
	per     time.Duration
	timeout time.Duration

	mu    sync.Mutex
	hosts map[string]*Limiter
}

// NewHTTPCaller returns a caller that allows calls per window per host and
// bounds each call by timeout.
func NewHTTPCaller(client *http.Client, calls int, per, timeout time.Duration) *HTTPCaller {
	if client == nil {
		client = &http.Client{}
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	return &HTTPCaller{client: client, calls: calls, per: per, timeout: timeout, hosts: map[string]*Limiter{}}
}

func (h *HTTPCaller) limiter(host string) *Limiter {
	h.mu.Lock()
	defer h.mu.Unlock()
	l, ok := h.hosts[host]
	if !ok {
		l = NewLimiter(h.calls, h.per, nil)
		h.hosts[host] = l
	}
	return l
}

// interval is the least time between two calls to one host that the
// budget allows on average.
func (h *HTTPCaller) interval() time.Duration {
	return h.per / time.Duration(max(h.calls, 1))
}

// Pause stops the calls to host until t, as the host asked with Retry-After.
// Other hosts' calls go on.
func (h *HTTPCaller) Pause(host string, t time.Time) { h.limiter(host).Pause(t) }

// HTTPError is a non-2xx answer from an outside system.
type HTTPError struct {
	// Host is the host:port that answered.
	Host   string
	Status int
	Body   string
	// RetryAfter is the answer's Retry-After (delay-seconds or an HTTP
	// date), 0 if none.
	RetryAfter time.Duration
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("answered %d %s: %s", e.Status, http.StatusText(e.Status), e.Body)
}

// Temporary reports whether the call may succeed later.
func (e *HTTPError) Temporary() bool {
	return e.Status == http.StatusTooManyRequests || e.Status == http.StatusRequestTimeout || e.Status >= 500
}

// RetryAfterDelay returns the server's Retry-After, if it sent one.
func (e *HTTPError) RetryAfterDelay() (time.Duration, bool) { return e.RetryAfter, e.RetryAfter > 0 }

func httpAction() *Action {
	return &Action{
		Name: "http.request",
		Doc:  "Calls another system over HTTP. Result: status, body (decoded if JSON).",
		Params: []Param{
			{Name: "url", Type: urlType, Required: true, Doc: "the URL to call"},
			{Name: "method", Type: enumType(true, "POST", "GET", "PUT", "PATCH", "DELETE"), Doc: "POST (default)"},
			{Name: "headers", Type: objectType, Doc: "request headers"},
			{Name: "body", Type: anyType, Doc: "an object or list is sent as JSON, a string as is"},
		},
		// Each host has its own limiter (HTTPCaller.limiter).
		Target: func(p Params) string {
			if u, err := url.Parse(p.String("url")); err == nil {
				return u.Host
			}
			return ""
		},
		Run: func(ctx context.Context, rt *Runtime, p Params) (Result, error) {
			return rt.HTTP.do(ctx, p)
		},
	}
}

func (h *HTTPCaller) do(ctx context.Context, p Params) (Result, error) {
	raw, err := p.Require("url")
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, Permanent(fmt.Errorf("param \"url\": %q is not an absolute http(s) URL", raw))
	}
	method := strings.ToUpper(p.String("method"))
	if method == "" {
		method = http.MethodPost
	}
	headers, err := p.Map("headers")
	if err != nil {
		return nil, err
	}
	var body io.Reader
	contentType := ""
	switch b := p["body"].(type) {
	case nil:
	case string:
		body = strings.NewReader(b)
		contentType = "text/plain; charset=utf-8"
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return nil, Permanent(fmt.Errorf("param \"body\": %w", err))
		}
		body = bytes.NewReader(data)
		contentType = "application/json"
	}
	release, err := h.limiter(u.Host).Acquire(ctx, priorityFrom(ctx))
	if err != nil {
		return nil, err
	}
	// Bounded from the grant on, and not cut short by shutdown once sent.
	callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(callCtx, method, u.String(), body)
	if err != nil {
		release()
		return nil, Permanent(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range headers {
		req.Header.Set(k, fmt.Sprint(v))
	}
	resp, err := h.client.Do(req)
	release()
	if err != nil {
		// No whole answer (refused, closed, reset, timed out): try again.
		return nil, Transient(fmt.Errorf("%s %s: %w", method, redactURL(raw), scrubURL(err)))
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := &HTTPError{Host: u.Host, Status: resp.StatusCode, Body: truncateText(string(data), 200),
			RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
		return nil, fmt.Errorf("%s %s: %w", method, redactURL(raw), e)
	}
	var decoded any = string(data)
	if json.Valid(data) && len(data) > 0 {
		_ = json.Unmarshal(data, &decoded)
	}
	return Result{"status": resp.StatusCode, "body": decoded}, nil
}

func scrubURL(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

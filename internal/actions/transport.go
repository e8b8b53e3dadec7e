package actions

import (
	"context"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/comm100bot/bot/internal/job"
)

// LimitedTransport is an http.RoundTripper that takes a token from the
// limiter before every request and gives the slot back when the answer
// arrives. Put it under the Comm100 client and every call, including token
// fetches, spends the shared budget.
//
// Waiting for a token is bounded only by the request's context: a backlog
// may hold a call for a whole window. Timeout bounds the call itself, from
// the moment it was granted, so that a long wait for the budget never leaves
// a call too little time to finish after the server has done the work. Once
// granted, a call is not cancelled with its context either (shutdown lets it
// finish): a call cut short after it reached the server would be repeated.
type LimitedTransport struct {
	Limiter *Limiter
	// Timeout of one call, from its grant to the end of its answer's body.
	// Zero means 30s.
	Timeout time.Duration
	Next    http.RoundTripper // nil means http.DefaultTransport
	// Waits, if set, observes how long each call waited for its token.
	Waits prometheus.Observer
}

// RoundTrip implements http.RoundTripper.
func (t *LimitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	release, err := t.Limiter.Acquire(req.Context(), priorityFrom(req.Context()))
	if err != nil {
		return nil, err
	}
	defer release()
	if t.Waits != nil {
		t.Waits.Observe(time.Since(start).Seconds())
	}
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(req.Context()), timeout)
	next := t.Next
	if next == nil {
		next = http.DefaultTransport
	}
	resp, err := next.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// cancelOnClose ends a call's context when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

type priorityKey struct{}

// WithPriority marks the calls made with ctx with a priority rank.
func WithPriority(ctx context.Context, rank int) context.Context {
	return context.WithValue(ctx, priorityKey{}, rank)
}

func priorityFrom(ctx context.Context) int {
	if r, ok := ctx.Value(priorityKey{}).(int); ok {
		return r
	}
	return job.Rank(job.PriorityNormal)
}

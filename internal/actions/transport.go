package actions

import (
	"context"
	"net/http"
)

// LimitedTransport is an http.RoundTripper that takes a token from the
// limiter before every request and gives the slot back when the answer
// arrives. Put it under the Comm100 client and every call, including token
// fetches, spends the shared budget.
type LimitedTransport struct {
	Limiter *Limiter
	Next    http.RoundTripper // nil means http.DefaultTransport
}

// RoundTrip implements http.RoundTripper.
func (t *LimitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	release, err := t.Limiter.Acquire(req.Context(), priorityFrom(req.Context()))
	if err != nil {
		return nil, err
	}
	defer release()
	next := t.Next
	if next == nil {
		next = http.DefaultTransport
	}
	return next.RoundTrip(req)
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
	return priorityRank(PriorityNormal)
}

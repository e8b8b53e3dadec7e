package bus

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Bounds of the retries of a create-or-update call.
const (
	// createAttemptTimeout bounds one attempt.
	createAttemptTimeout = 3 * time.Second
	// createRetryFor bounds all of them, when the caller's context does not.
	createRetryFor = 30 * time.Second
)

// retryingJS is the JetStream the bot uses: its create-or-update calls for
// streams, buckets and consumers, and its stream look-ups, try again while
// the cluster cannot answer them yet. A clustered nats-server may leave unanswered the second of two
// identical creates that arrive together (replicas starting together), it
// answers "no suitable peers" until its nodes know of each other, and it
// answers nothing while it elects a leader. Every caller creates idempotently,
// so trying again is safe; without it a replica that starts at such a moment
// gives up and stops.
type retryingJS struct {
	jetstream.JetStream
}

// withCreateRetries wraps js; see retryingJS.
func withCreateRetries(js jetstream.JetStream) jetstream.JetStream { return retryingJS{js} }

func (r retryingJS) CreateOrUpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	return retryCreate(ctx, func(ctx context.Context) (jetstream.Stream, error) {
		return r.JetStream.CreateOrUpdateStream(ctx, cfg)
	})
}

func (r retryingJS) CreateOrUpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return retryCreate(ctx, func(ctx context.Context) (jetstream.KeyValue, error) {
		return r.JetStream.CreateOrUpdateKeyValue(ctx, cfg)
	})
}

// Stream looks a stream up, again while the cluster cannot answer: the
// pool opens ACTIONS when it starts, right after creating its consumer.
func (r retryingJS) Stream(ctx context.Context, name string) (jetstream.Stream, error) {
	return retryCreate(ctx, func(ctx context.Context) (jetstream.Stream, error) {
		return r.JetStream.Stream(ctx, name)
	})
}

func (r retryingJS) CreateOrUpdateConsumer(ctx context.Context, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	return retryCreate(ctx, func(ctx context.Context) (jetstream.Consumer, error) {
		return r.JetStream.CreateOrUpdateConsumer(ctx, stream, cfg)
	})
}

func retryCreate[T any](ctx context.Context, create func(context.Context) (T, error)) (T, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, createRetryFor)
		defer cancel()
	}
	b := backoff.NewExponentialBackOff(backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(2*time.Second), backoff.WithMaxElapsedTime(0))
	for {
		actx, cancel := context.WithTimeout(ctx, createAttemptTimeout)
		v, err := create(actx)
		cancel()
		if err == nil || ctx.Err() != nil || !clusterBusy(err) {
			return v, err
		}
		Sleep(ctx, b.NextBackOff())
	}
}

// clusterBusy reports whether err says the cluster could not answer yet, as
// opposed to refusing the request.
func clusterBusy(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case 10005, // no suitable peers for placement (yet)
			10008, // JetStream system temporarily unavailable
			10009: // JetStream cluster can not handle request (no leader)
			return true
		}
		return false
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrDisconnected)
}

// Sleep waits for d or until ctx is done, and reports whether d passed: the
// pause between two tries, wherever the bot tries again.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

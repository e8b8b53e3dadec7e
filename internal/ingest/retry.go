package ingest

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/comm100bot/bot/internal/bus"
)

// While a NATS cluster elects a new leader for the EVENTS stream (a node was
// lost), a publish finds no one to store it; while the client moves to
// another node, it cannot be sent at all. Both are certain not to have stored
// the event, and both pass within seconds, so the publish is tried again
// within its timeout instead of refusing the webhook at once.
const (
	// publishRetryWait is the pause between tries.
	publishRetryWait = 100 * time.Millisecond
	// reconnectGrace bounds the tries while the client has no connection:
	// moving to another node takes milliseconds; a bus that is down for
	// good should be refused quickly.
	reconnectGrace = time.Second
)

// publishRetrying calls publish, trying again while the stream has no
// leader or the connection is moving, until ctx is done.
func publishRetrying(ctx context.Context, publish func(context.Context) (*jetstream.PubAck, error)) (*jetstream.PubAck, error) {
	var disconnectedSince time.Time
	for {
		ack, err := publish(ctx)
		if err == nil || ctx.Err() != nil {
			return ack, err
		}
		switch {
		case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
			disconnectedSince = time.Time{}
		case errors.Is(err, nats.ErrConnectionReconnecting), errors.Is(err, nats.ErrReconnectBufExceeded),
			errors.Is(err, nats.ErrDisconnected):
			if disconnectedSince.IsZero() {
				disconnectedSince = time.Now()
			}
			if time.Since(disconnectedSince) > reconnectGrace {
				return nil, err
			}
		default:
			return nil, err
		}
		if !bus.Sleep(ctx, publishRetryWait) {
			return nil, err
		}
	}
}

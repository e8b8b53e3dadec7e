package ingest

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/event"
)

// Sink makes an event durable. It reports duplicate when the bus already
// holds an event with the same id.
type Sink interface {
	Publish(ctx context.Context, ev *event.Event) (duplicate bool, err error)
}

// JetStreamPublisher publishes events to the EVENTS stream, with the event's
// key (<source>/<id>) as Nats-Msg-Id so that JetStream drops repeats inside
// its own duplicate window (short: bus.MsgIDWindow); Recent recognises
// those of the whole nats.dedup_window.
type JetStreamPublisher struct {
	JS jetstream.JetStream
	// Recent, if set, remembers the ids stored within nats.dedup_window: a
	// repeat it knows is a duplicate without a publish, and every event
	// stored is added to it. The stream's own window is then kept short.
	Recent *RecentIDs
	// Batcher, if set, publishes the events: the events of webhooks that
	// arrive together are then stored together (see bus.Batcher).
	Batcher *bus.Batcher
	// Timeout bounds the wait for the PubAck. Default 5s.
	Timeout time.Duration
}

// Publish returns once JetStream has acknowledged the event. While the
// stream elects a leader, or the connection moves to another node, it tries
// again within the timeout.
func (p *JetStreamPublisher) Publish(ctx context.Context, ev *event.Event) (bool, error) {
	key := ev.Key()
	if p.Recent != nil && p.Recent.Seen(key) {
		return true, nil
	}
	payload, err := ev.AppendJSON(make([]byte, 0, 1024))
	if err != nil {
		return false, fmt.Errorf("encode event %s: %w", ev.ID, err)
	}
	timeout := p.Timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	msg := &nats.Msg{Subject: ev.BusSubject(), Data: payload, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, key)
	msg.Header.Set(bus.KeyedHeader, "1")
	publish := func(ctx context.Context) (*jetstream.PubAck, error) { return p.JS.PublishMsg(ctx, msg) }
	if p.Batcher != nil {
		publish = func(ctx context.Context) (*jetstream.PubAck, error) { return p.Batcher.Publish(ctx, msg) }
	}
	ack, err := publishRetrying(ctx, publish)
	if err != nil {
		return false, fmt.Errorf("publish event %s: %w", ev.ID, err)
	}
	if p.Recent != nil {
		p.Recent.Add(key, time.Now())
	}
	return ack.Duplicate, nil
}

package rules

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/comm100bot/bot/internal/actions"
	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/event"
)

// routerBenchRule matches every benchmark event with two actions that are
// not Comm100 calls.
const routerBenchRule = `rules:
  - name: order-created
    on: shop.order.created
    when: data.order.total > 0
    actions:
      - do: log
        with: { message: "order {{ data.order.id }} created: {{ data.order.total }} {{ data.order.currency }}" }
      - do: log
        with: { message: "order {{ data.order.id }} for {{ data.customer.name }} <{{ data.customer.email }}>" }
`

// extraBenchRules are n rules that never match; 1 in 100 is a candidate for
// the benchmark's events.
func extraBenchRules(n int) string {
	var b strings.Builder
	for i := range n {
		on := fmt.Sprintf("shop.kind%d.created", i%max(1, n/10))
		if i%100 == 0 {
			on = "shop.order.created"
		}
		fmt.Fprintf(&b, "  - name: extra-%d\n    on: %s\n    when: data.never == %d\n    actions:\n      - do: log\n        with: { message: \"extra %d\" }\n", i, on, i, i)
	}
	return b.String()
}

// BenchmarkRouter measures the rules path on a real embedded JetStream: b.N
// events waiting on EVENTS, each matching one rule with two actions, until
// every event is acknowledged and its two jobs are stored on ACTIONS. It
// reports events/s.
func BenchmarkRouter(b *testing.B) {
	for _, extra := range []int{0, 1000} {
		b.Run(fmt.Sprintf("rules=%d", extra+1), func(b *testing.B) { benchmarkRouter(b, extra) })
	}
}

func benchmarkRouter(b *testing.B, extra int) {
	ctx := b.Context()
	bs, err := bus.Open(ctx, bus.Config{StoreDir: b.TempDir(), Listen: "127.0.0.1:-1"}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer bs.Close()
	if err := bus.Setup(ctx, bs.JS, bus.Config{}); err != nil {
		b.Fatal(err)
	}
	eng := mustLoad(b, routerBenchRule+extraBenchRules(extra))

	for i := range b.N {
		id := strconv.Itoa(i)
		ev := event.Event{ID: "order-" + id, Source: "shop", Type: "order.created", Time: time.Now().UTC(), Data: map[string]any{
			"order":    map[string]any{"id": id, "total": 129.5, "currency": "CAD", "items": []any{map[string]any{"sku": "NW-1042", "qty": int64(1)}}},
			"customer": map[string]any{"name": "Jane Cooper", "email": "jane.cooper@example.com", "tier": "gold"},
		}}
		data, err := ev.AppendJSON(nil)
		if err != nil {
			b.Fatal(err)
		}
		msg := &nats.Msg{Subject: ev.BusSubject(), Data: data, Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, ev.ID)
		if _, err := bs.JS.PublishMsgAsync(msg); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 { // within the client's limit of pending publishes
			<-bs.JS.PublishAsyncComplete()
		}
	}
	select {
	case <-bs.JS.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("events not stored")
	}

	r, err := NewRouter(bs.JS, func() *Engine { return eng }, &actions.Queue{JS: bs.JS}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		b.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	b.ResetTimer()
	start := time.Now()
	go func() { done <- r.Run(rctx) }()
	deadline := start.Add(5 * time.Minute)
	for {
		if c, err := bs.JS.Consumer(ctx, bus.EventsStream, bus.RulesConsumer); err == nil {
			info, err := c.Info(ctx)
			if err == nil && info.AckFloor.Stream >= uint64(b.N) && info.NumAckPending == 0 && info.NumPending == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			b.Fatal("events not all evaluated in time")
		}
		time.Sleep(2 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	s, err := bs.JS.Stream(ctx, bus.ActionsStream)
	if err != nil {
		b.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if got, want := info.State.Msgs, uint64(2*b.N); got != want {
		b.Fatalf("ACTIONS holds %d jobs, want %d", got, want)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}

package bus

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var benchStoreDir = flag.String("bench-store-dir", "", "where BenchmarkPublishSync keeps its store (default a temporary directory); put it on the disk to measure")

// BenchmarkPublishSync measures what nats.sync costs: events of a real
// chat-ended size published to the embedded server and acknowledged, as
// ingest does before it answers 202, by 1 and by 16 senders at once. The
// README quotes it; run with
//
//	go test ./internal/bus -run '^$' -bench PublishSync -count 5
func BenchmarkPublishSync(b *testing.B) {
	benchmarkPublish(b, false)
}

// BenchmarkPublishBatched is BenchmarkPublishSync through a Batcher, as
// ingest publishes where every write is synced (the only place the bot
// uses one).
func BenchmarkPublishBatched(b *testing.B) {
	benchmarkPublish(b, true)
}

func benchmarkPublish(b *testing.B, batched bool) {
	event := bytes.Repeat([]byte("x"), 2500) // a Comm100 chat_ended event is about 2.5 KB
	for _, syncMode := range []string{"always", "1s", "2m"} {
		if batched && syncMode != SyncAlways {
			continue
		}
		for _, senders := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("sync=%s/senders=%d", syncMode, senders), func(b *testing.B) {
				dir := *benchStoreDir
				if dir == "" {
					dir = b.TempDir()
				} else {
					var err error
					if dir, err = os.MkdirTemp(dir, "bench-"); err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { os.RemoveAll(dir) })
				}
				cfg := Config{StoreDir: dir, Listen: "127.0.0.1:-1", Sync: syncMode}
				bus, err := Open(b.Context(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
				if err != nil {
					b.Fatal(err)
				}
				defer bus.Close()
				if err := Setup(b.Context(), bus.JS, cfg); err != nil {
					b.Fatal(err)
				}
				batcher := NewBatcher(bus.JS, EventsStream)
				var next atomic.Int64
				b.SetBytes(int64(len(event)))
				b.ResetTimer()
				var wg sync.WaitGroup
				for range senders {
					wg.Go(func() {
						for {
							i := next.Add(1)
							if i > int64(b.N) {
								return
							}
							msg := &nats.Msg{Subject: "events.bench.chat.ended", Data: event, Header: nats.Header{}}
							msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("chat.ended:%d", i))
							publish := bus.JS.PublishMsg
							if batched {
								publish = func(ctx context.Context, msg *nats.Msg, _ ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
									return batcher.Publish(ctx, msg)
								}
							}
							if _, err := publish(b.Context(), msg); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}

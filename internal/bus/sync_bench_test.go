package bus

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
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

// benchBus opens an embedded server with its streams, syncing as syncMode
// says, in a directory of its own (below -bench-store-dir if given), and
// closes it when the benchmark ends.
func benchBus(b *testing.B, syncMode string) *Bus {
	b.Helper()
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
	b.Cleanup(bus.Close)
	if err := Setup(b.Context(), bus.JS, cfg); err != nil {
		b.Fatal(err)
	}
	return bus
}

func benchmarkPublish(b *testing.B, batched bool) {
	event := bytes.Repeat([]byte("x"), 2500) // a Comm100 chat_ended event is about 2.5 KB
	for _, syncMode := range []string{"always", "1s", "2m"} {
		if batched && syncMode != SyncAlways {
			continue
		}
		for _, senders := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("sync=%s/senders=%d", syncMode, senders), func(b *testing.B) {
				bus := benchBus(b, syncMode)
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

// BenchmarkBatchCommit is what one group of n events costs to store with
// nats.sync always, alone on an idle server: n=1 one message, larger n one
// atomic batch (whatever the Batcher's minBatch, which sends fewer than 16
// one by one). A batch has a fixed cost (the server stages it in a file
// store of its own, created, synced and removed for each batch) that a lone
// message does not; with many senders it pays from about 16 messages on
// (see minBatch), and it is why
// ingest and the rules stay below the floor on a disk slow to sync:
//
//	go test ./internal/bus -run '^$' -bench BatchCommit -count 5
func BenchmarkBatchCommit(b *testing.B) {
	event := bytes.Repeat([]byte("x"), 2000)
	for _, n := range []int{1, 8, 32, 128} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			bus := benchBus(b, SyncAlways)
			batcher := NewBatcher(bus.JS, EventsStream)
			batcher.minBatch = 2       // a group of one goes alone
			run, seq := nuid.Next(), 0 // ids of this run only: no duplicates
			for b.Loop() {
				// Queue the group while every slot looks busy, then send it.
				batcher.mu.Lock()
				batcher.inflight = batcher.slots
				batcher.mu.Unlock()
				futures := make([]jetstream.PubAckFuture, n)
				for i := range futures {
					seq++
					msg := &nats.Msg{Subject: "events.bench.chat.ended", Data: event, Header: nats.Header{}}
					msg.Header.Set(jetstream.MsgIDHeader, run+strconv.Itoa(seq))
					futures[i] = batcher.PublishAsync(msg)
				}
				batcher.mu.Lock()
				batcher.inflight = batcher.slots - 1
				batcher.mu.Unlock()
				batcher.run()
				for _, f := range futures {
					select {
					case <-f.Ok():
					case err := <-f.Err():
						b.Fatal(err)
					}
				}
			}
			if n > 1 && batcher.committed.Load() == 0 {
				b.Fatal("no batch was committed")
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

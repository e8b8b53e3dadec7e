package bus

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var dedupIDs = flag.Int("dedup-ids", 0, "measure the memory of this many remembered event ids against an embedded server (slow; 0 skips)")

// TestDedupWindowMemory measures what the duplicate window costs: the heap
// of an embedded server that remembers N event ids, less the heap of the same
// server after the same N events published without ids. Streams keep one
// message (MaxMsgs 1) so that only the remembered ids grow. The README states
// the result. Run with: go test ./internal/bus -run DedupWindowMemory -v -dedup-ids 500000
func TestDedupWindowMemory(t *testing.T) {
	if *dedupIDs == 0 {
		t.Skip("set -dedup-ids N to measure")
	}
	n := *dedupIDs
	for _, id := range []struct {
		name   string
		format string
	}{
		{"comm100 live-chat id (chat.ended:<chat GUID>, 47 bytes)", "chat.ended:8f14e45f-ceea-4e7a-9b21-3d5c%08d"},
		{"uuid (36 bytes)", "72d3162e-cc78-11e3-81ab-4c93%08d"},
	} {
		without := heapAfter(t, n, "")
		with := heapAfter(t, n, id.format)
		t.Logf("%s: %d ids cost %.1f MiB: %.0f bytes per remembered id",
			id.name, n, float64(with-without)/(1<<20), float64(with-without)/float64(n))
	}
}

// heapAfter publishes n events (with ids made by format, or none) to a fresh
// embedded server and returns the live heap afterwards.
func heapAfter(t *testing.T, n int, format string) int64 {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "M", Subjects: []string{"m.>"}, Storage: jetstream.MemoryStorage,
		MaxMsgs: 1, Duplicates: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 512)
	for i := range n {
		msg := &nats.Msg{Subject: "m.x", Data: payload, Header: nats.Header{}}
		if format != "" {
			msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf(format, i))
		}
		if _, err := js.PublishMsgAsync(msg); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		t.Fatal("publishing did not complete")
	}
	var ms runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

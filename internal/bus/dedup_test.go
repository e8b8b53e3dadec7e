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

var (
	dedupIDs    = flag.Int("dedup-ids", 0, "measure the memory of this many remembered event ids against an embedded server (slow; 0 skips)")
	waitingJobs = flag.Int("waiting-jobs", 0, "measure the memory of this many jobs waiting on subjects of their own against an embedded server (slow; 0 skips)")
)

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

// TestWaitingJobMemory measures what a subject of its own costs each job
// while it is in ACTIONS: the heap of an embedded server whose file stream
// holds N jobs, each on its own subject (as the bot stores them), less the
// heap of the same server holding N jobs on one subject. The README states
// the result. Run with: go test ./internal/bus -run WaitingJobMemory -v -waiting-jobs 300000
func TestWaitingJobMemory(t *testing.T) {
	if *waitingJobs == 0 {
		t.Skip("set -waiting-jobs N to measure")
	}
	n := *waitingJobs
	// actions.run.<action>.<20-character token>
	shared := heapHolding(t, n, func(int) string { return "actions.run.comm100.ticket.create" })
	own := heapHolding(t, n, func(i int) string { return fmt.Sprintf("actions.run.comm100.ticket.create.%020x", i) })
	t.Logf("%d waiting jobs on subjects of their own cost %.1f MiB more than on one subject: %.0f bytes per job",
		n, float64(own-shared)/(1<<20), float64(own-shared)/float64(n))
}

// heapHolding stores n jobs of 512 bytes in a fresh embedded server's file
// stream, job i on subject(i), and returns the live heap afterwards.
func heapHolding(t *testing.T, n int, subject func(i int) string) int64 {
	t.Helper()
	js, done := measuredServer(t)
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "A", Subjects: []string{"actions.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 512)
	for i := range n {
		if _, err := js.PublishMsgAsync(&nats.Msg{Subject: subject(i), Data: payload}); err != nil {
			t.Fatal(err)
		}
	}
	return heapOnceDone(ctx, t, js)
}

// measuredServer starts an embedded server on a temporary store and returns
// a JetStream client of it, and what stops both.
func measuredServer(t *testing.T) (jetstream.JetStream, func()) {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		t.Fatal(err)
	}
	return js, func() { nc.Close(); srv.Shutdown(); srv.WaitForShutdown() }
}

// heapOnceDone waits for js's asynchronous publishes and returns the live
// heap after three collections.
func heapOnceDone(ctx context.Context, t *testing.T, js jetstream.JetStream) int64 {
	t.Helper()
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

// heapAfter publishes n events (with ids made by format, or none) to a fresh
// embedded server and returns the live heap afterwards.
func heapAfter(t *testing.T, n int, format string) int64 {
	t.Helper()
	js, done := measuredServer(t)
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{
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
	return heapOnceDone(ctx, t, js)
}

package actions

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/job"
)

// BenchmarkPool measures how many jobs per second the pool finishes on a
// real embedded JetStream (file store, synced every 2 minutes, as with
// nats.sync 2m): b.N jobs are queued, then a pool with the default workers
// carries them all out, from its start to the last acknowledgement.
//
//		go test ./internal/actions -run '^$' -bench BenchmarkPool -benchtime 5000x -count 3
//
//	  - log: "log" jobs, carried out (no Comm100 call);
//	  - dry_run: Comm100 jobs of a pool in dry run;
//	  - mixed: both, alternating.
func BenchmarkPool(b *testing.B) {
	logJob := func(i int) *job.Job {
		return &job.Job{ID: "bench-" + strconv.Itoa(i) + "/r/0", EventID: "bench-" + strconv.Itoa(i), Rule: "r",
			Action: "log", Params: map[string]any{"message": "order " + strconv.Itoa(i)}, Created: time.Now().UTC()}
	}
	dryJob := func(i int) *job.Job {
		j := ticketJob("bench-" + strconv.Itoa(i))
		j.ID = "bench-" + strconv.Itoa(i) + "/r/1"
		return j
	}
	for _, tc := range []struct {
		name string
		dry  bool
		jobs func(i int) *job.Job
	}{
		{"log", false, logJob},
		{"dry_run", true, dryJob},
		{"mixed", true, func(i int) *job.Job {
			if i%2 == 0 {
				return logJob(i)
			}
			return dryJob(i)
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			js := benchJetStream(b)
			ctx := b.Context()
			q := &Queue{JS: js}
			for i := range b.N {
				if _, err := q.PublishAsync(tc.jobs(i)); err != nil {
					b.Fatal(err)
				}
			}
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(time.Minute):
				b.Fatal("jobs not queued within a minute")
			}
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			rt := &Runtime{HTTP: NewHTTPCaller(nil, 60, time.Minute, 5*time.Second), Schedules: q, Log: log}
			p, err := NewPool(Config{DryRun: tc.dry}, js, NewCatalog(), rt, nil, log, nil)
			if err != nil {
				b.Fatal(err)
			}
			pctx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			b.ResetTimer()
			start := time.Now()
			go func() { done <- p.Run(pctx) }()
			deadline := time.Now().Add(5 * time.Minute)
			for !benchIdle(ctx, js) {
				if time.Now().After(deadline) {
					b.Fatal("jobs not finished within 5 minutes")
				}
				time.Sleep(5 * time.Millisecond)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "jobs/s")
		})
	}
}

// benchJetStream starts an embedded JetStream server with the bot's streams
// and returns a connection to it.
func benchJetStream(b *testing.B) jetstream.JetStream {
	b.Helper()
	srv, err := server.NewServer(&server.Options{
		ServerName: "bench", Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: b.TempDir(),
		SyncInterval: 2 * time.Minute, NoLog: true, NoSigs: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	srv.Start()
	b.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		b.Fatal("embedded NATS server not ready")
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Fatal(err)
	}
	if err := bus.Setup(b.Context(), js, bus.Config{}); err != nil {
		b.Fatal(fmt.Errorf("setup: %w", err))
	}
	return js
}

// benchIdle reports whether the pool's consumers have nothing pending or in
// hand.
func benchIdle(ctx context.Context, js jetstream.JetStream) bool {
	n, err := JobsWaiting(ctx, js)
	return err == nil && n == 0
}

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// BenchmarkIntake measures webhooks accepted (202 after the PubAck) per
// second, posted by many senders at once: by one bot on its embedded NATS,
// and by three bots behind a round-robin on a 3-node cluster keeping 3
// replicas. Actions run dry: this is the intake and the rules, not Comm100,
// whose budget (300 calls per 5 minutes) is the same for both. Everything
// runs in one process on one machine, so the cluster's figure is a floor:
//
//	go test ./cmd/bot -run '^$' -bench Intake -benchtime 2000x -count 5
func BenchmarkIntake(b *testing.B) {
	rules := writeRulesTB(b)
	b.Run("one bot, embedded NATS", func(b *testing.B) {
		a := intakeBot(b, "--nats.listen", "127.0.0.1:-1", "--nats.store_dir", b.TempDir(), "--rules.dir", rules)
		postParallel(b, []string{"http://" + a.Addr() + "/hooks/comm100"})
	})
	b.Run("three bots, 3-node cluster, 3 replicas", func(b *testing.B) {
		setup := &clusterSetup{cluster: startNATSCluster(b, 3), rulesDir: rules, logLevel: slog.LevelWarn}
		var urls []string
		for i := range 3 {
			urls = append(urls, setup.startBot(b, fmt.Sprintf("bot-%d", i+1)).url())
		}
		postParallel(b, urls)
	})
}

func writeRulesTB(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	err := os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(`rules:
  - name: low-rated-chat-ticket
    on: comm100.chat.ended
    when: data.chat.rating <= 2
    actions:
      - do: comm100.ticket.create
        with:
          subject: "Low rating on chat {{ data.chat.id }}"
`), 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	return dir
}

// intakeBot runs a bot without Comm100 credentials (actions run dry).
func intakeBot(b *testing.B, args ...string) *app {
	b.Helper()
	fs := pflag.NewFlagSet("bench", pflag.ContinueOnError)
	configFlags(fs)
	if err := fs.Parse(append([]string{"--http.addr", "127.0.0.1:0", "--http.admin_addr", "127.0.0.1:0", "--rules.watch=false"}, args...)); err != nil {
		b.Fatal(err)
	}
	cfg, err := loadConfig(fs, nil)
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(b.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	a, err := newApp(ctx, cfg, log)
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.run(ctx) }()
	b.Cleanup(func() {
		cancel()
		<-done
	})
	return a
}

// postParallel posts b.N distinct low-rated chats from 4 senders per CPU,
// spread over urls, and reports webhooks accepted per second.
func postParallel(b *testing.B, urls []string) {
	var next atomic.Int64
	bodies := make([][]byte, 0, b.N)
	for i := range b.N {
		bodies = append(bodies, lowRatedChat(b, 1_000_000+i))
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}
	b.SetParallelism(4)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			resp, err := client.Post(urls[int(i)%len(urls)], "application/json", bytes.NewReader(bodies[i]))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				b.Errorf("chat %d: answered %d", i, resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "webhooks/s")
}

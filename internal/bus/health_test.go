package bus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/comm100bot/bot/internal/testenv"
)

// logBuffer is a log written by the bus while the test reads it.
type logBuffer struct{ testenv.LogBuffer }

func (l *logBuffer) count(s string) int { return strings.Count(l.String(), s) }

func testLogger(t *testing.T) (*slog.Logger, *logBuffer) {
	buf := &logBuffer{}
	return slog.New(slog.NewTextHandler(&teeWriter{buf, t}, &slog.HandlerOptions{Level: slog.LevelInfo})), buf
}

type teeWriter struct {
	buf *logBuffer
	t   *testing.T
}

func (w *teeWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", bytes.TrimRight(p, "\n"))
	return w.buf.Write(p)
}

// openBus opens the bus with an embedded server on a free port and sets up
// the streams; it runs the watcher when watch is set.
func openBus(t *testing.T, cfg Config, watch bool) (*Bus, *logBuffer) {
	t.Helper()
	log, buf := testLogger(t)
	cfg.Listen = "127.0.0.1:-1"
	b, err := Open(t.Context(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := Setup(t.Context(), b.JS, cfg); err != nil {
		b.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if watch {
			_ = b.Run(ctx)
		}
	}()
	t.Cleanup(func() { cancel(); <-done; b.Close() })
	return b, buf
}

// fill publishes events until the bus refuses one, and returns how many it took.
func fill(t *testing.T, b *Bus, size int) int {
	t.Helper()
	payload := bytes.Repeat([]byte("x"), size)
	for i := 0; i < 100000; i++ {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		msg := &nats.Msg{Subject: "events.test.filled", Data: payload, Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("fill-%d", i))
		_, err := b.JS.PublishMsg(ctx, msg)
		cancel()
		if err != nil {
			t.Logf("publish %d refused: %v", i, err)
			return i
		}
	}
	t.Fatal("the store never filled")
	return 0
}

// publishOne stores one event or says why not.
func publishOne(t *testing.T, b *Bus, id string) error {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	msg := &nats.Msg{Subject: "events.test.after", Data: []byte(`{}`), Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, id)
	_, err := b.JS.PublishMsg(ctx, msg)
	return err
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitReady(t *testing.T, b *Bus, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := b.Ready(t.Context())
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still not ready after %s: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStoreAtItsLimitIsNotReady: with nats.max_store reached, publishes
// are refused and Ready says why (before, /readyz said 200 throughout); once
// old events are removed, the bus is ready and stores again by itself.
func TestStoreAtItsLimitIsNotReady(t *testing.T) {
	b, _ := openBus(t, Config{StoreDir: t.TempDir(), MaxStore: 1 << 20}, false)
	if err := b.Ready(t.Context()); err != nil {
		t.Fatalf("a fresh bus: %v", err)
	}
	if n := fill(t, b, 8<<10); n == 0 {
		t.Fatal("nothing was stored")
	}
	err := b.Ready(t.Context())
	var se *StoreError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "at its limit") {
		t.Fatalf("full store: Ready = %v, want a StoreError saying the store is at its limit", err)
	}
	s, err := b.JS.Stream(t.Context(), EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitReady(t, b, 10*time.Second)
	if err := publishOne(t, b, "after-purge"); err != nil {
		t.Errorf("after the purge: %v", err)
	}
}

func TestConfigSync(t *testing.T) {
	tests := []struct {
		sync     string
		interval time.Duration
		always   bool
		err      bool
	}{
		{"always", 0, true, false},
		{"1s", time.Second, false, false},
		{"2m", 2 * time.Minute, false, false},
		{"0s", 0, false, true},
		{"sometimes", 0, false, true},
	}
	for _, tt := range tests {
		c := Config{Sync: tt.sync}
		interval, always, err := c.syncOptions()
		if (err != nil) != tt.err || interval != tt.interval || always != tt.always {
			t.Errorf("sync %q: got %v %v %v", tt.sync, interval, always, err)
		}
	}
	var c Config
	c.Defaults()
	if c.Sync != SyncAlways {
		t.Errorf("default sync: got %q, want always", c.Sync)
	}
}

// TestOpenSaysWhyTheServerCannotStart: a store that takes no writes, or a
// port in use, is reported at once with its cause (before, after 10s, as
// "did not become ready ... (is the port in use?)").
func TestOpenSaysWhyTheServerCannotStart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	jsFile := t.TempDir()
	if err := os.WriteFile(filepath.Join(jsFile, "jetstream"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	tests := []struct {
		name, storeDir, listen, want string
	}{
		{"read-only store", readOnlyDir(t), "127.0.0.1:-1", "read-only file system"},
		{"a file where the store should be", filepath.Join(file, "data"), "127.0.0.1:-1", "not a directory"},
		{"JetStream's own directory is a file", jsFile, "127.0.0.1:-1", "storage directory is not a directory"},
		{"port in use", t.TempDir(), busy.Addr().String(), "address already in use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, _ := testLogger(t)
			b, err := Open(t.Context(), Config{StoreDir: tt.storeDir, Listen: tt.listen}, log)
			if err == nil {
				b.Close()
				t.Fatal("opened; want an error")
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "did not become ready") {
				t.Errorf("got %q, want the cause %q", err, tt.want)
			}
		})
	}
}

// readOnlyDir is a directory on a read-only file system: a read-only tmpfs
// when the test may mount one (root ignores file modes), else a directory
// without write permission, whose error names the permission instead.
func readOnlyDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", dir).CombinedOutput(); err == nil {
			t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
			return dir
		} else {
			t.Skipf("cannot mount a read-only tmpfs: %v %s", err, out)
		}
	}
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Skip("not root: a directory without write permission is not a read-only file system")
	return dir
}

// tmpfs mounts a small tmpfs for the store, so that the disk can be filled.
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// TestLongFullDiskClearsByItself fills the disk under the embedded server.
// Before, a write error stuck to the stream (every publish then timed out)
// and a store limit sized from the free disk at start stayed small, until
// the bot restarted; /readyz said 200 and the server's errors were not
// logged. Now Ready reports the cause, the server's error is logged once,
// and once the disk has room the bus stores again by itself, keeping what
// it had stored.
func TestLongFullDiskClearsByItself(t *testing.T) {
	testenv.Long(t)
	for _, tt := range []struct {
		name    string
		ballast int64 // written before the bot starts
		cause   string
	}{
		{"disk full: a write error", 0, "no space left on device"},
		{"store limit from a nearly full disk", 12 << 20, "at its limit"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			disk := tmpfs(t, "16m")
			ballast := filepath.Join(disk, "ballast")
			if err := os.WriteFile(ballast, make([]byte, tt.ballast), 0o644); err != nil {
				t.Fatal(err)
			}
			b, logs := openBus(t, Config{StoreDir: filepath.Join(disk, "store")}, true)
			if tt.ballast == 0 {
				// The server sized its store from an empty disk: fill the disk
				// from outside until little is left, so that writes fail first.
				f, err := os.Create(ballast)
				if err != nil {
					t.Fatal(err)
				}
				chunk := make([]byte, 256<<10)
				for {
					if _, err := f.Write(chunk); err != nil {
						break
					}
				}
				f.Close()
				if free, _ := diskFree(disk); free > 1<<20 {
					t.Fatalf("%d bytes still free", free)
				}
				if err := os.Truncate(ballast, mustSize(t, ballast)-512<<10); err != nil {
					t.Fatal(err)
				}
			}
			stored := fill(t, b, 16<<10)
			deadline := time.Now().Add(10 * time.Second)
			for err := b.Ready(t.Context()); err == nil || !strings.Contains(err.Error(), tt.cause); err = b.Ready(t.Context()) {
				if time.Now().After(deadline) {
					t.Fatalf("full: Ready = %v, want it to say %q", err, tt.cause)
				}
				time.Sleep(50 * time.Millisecond)
			}
			for i := range 3 {
				if err := publishOne(t, b, fmt.Sprint("while-full-", i)); err == nil {
					t.Fatal("stored while full")
				}
			}
			// Space comes back.
			if err := os.Remove(ballast); err != nil {
				t.Fatal(err)
			}
			waitReady(t, b, 30*time.Second)
			// Ready may turn true a moment before the watcher's last start of
			// JetStream, whose reconnection cuts a publish in flight: what
			// counts is that the bus stores again by itself, soon.
			var err error
			deadline = time.Now().Add(10 * time.Second)
			for err = publishOne(t, b, "after"); err != nil && time.Now().Before(deadline); err = publishOne(t, b, "after") {
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				t.Fatalf("ready, but the store still refuses after 10s: %v", err)
			}
			s, err := b.JS.Stream(t.Context(), EventsStream)
			if err != nil {
				t.Fatal(err)
			}
			info, err := s.Info(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if info.State.Msgs < uint64(stored)+1 {
				t.Errorf("the stream holds %d events, want the %d stored before and the one after", info.State.Msgs, stored)
			}
			waitFor(t, "the recovery to be logged", 5*time.Second, func() bool { return logs.count("JetStream stores events again") > 0 })
			if n := logs.count("JetStream cannot store events"); n != 1 {
				t.Errorf("the outage was logged %d times, want once", n)
			}
			if n := logs.count("JetStream stores events again"); n != 1 {
				t.Errorf("the recovery was logged %d times, want once", n)
			}
			if tt.ballast == 0 {
				if n := logs.count("no space left on device"); n == 0 || n > 6 {
					t.Errorf("the server's own error was logged %d times, want a few", n)
				}
			}
		})
	}
}

func mustSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// A connection the server closes for a protocol error is not reconnected
// by the client: the bus reports it as broken (GET /healthz), and a bus
// being closed reports nothing.
func TestBrokenConnection(t *testing.T) {
	b, buf := openBus(t, Config{StoreDir: t.TempDir()}, false)
	if err := b.Broken(); err != nil {
		t.Fatalf("a fresh bus: %v", err)
	}
	// A subject longer than the server's 4 KB protocol line.
	if err := b.Conn.Publish("events."+strings.Repeat("a", 5000), nil); err != nil {
		t.Fatal(err)
	}
	_ = b.Conn.Flush()
	deadline := time.Now().Add(5 * time.Second)
	for b.Broken() == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	err := b.Broken()
	if err == nil || !strings.Contains(err.Error(), `"bot"`) {
		t.Fatalf("got %v, want the bot connection reported closed", err)
	}
	// The client calls the closed handler after the close, on a goroutine of its own.
	for !strings.Contains(buf.String(), "NATS connection closed for good") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(buf.String(), "NATS connection closed for good") {
		t.Errorf("nothing logged:\n%s", buf.String())
	}
	b.Close()
	if err := b.Broken(); err != nil {
		t.Errorf("a closed bus: %v", err)
	}
}

// stuckBus opens a bus whose health checks of the embedded server are never
// answered, as when a lock of its store is held for good; entered, if not
// nil, is sent to as each check starts. The server is shut down when the
// test ends (Close leaves a stuck one).
func stuckBus(t *testing.T, entered chan<- struct{}) (*Bus, *server.Server, *logBuffer) {
	t.Helper()
	b, buf := openBus(t, Config{StoreDir: t.TempDir()}, false)
	srv := b.srv.Load()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	held := make(chan struct{})
	t.Cleanup(func() { close(held) })
	b.stuckAfter = 1500 * time.Millisecond
	b.checkStore = func(*server.Server) error {
		if entered != nil {
			entered <- struct{}{}
		}
		<-held
		return nil
	}
	return b, srv, buf
}

// TestStuckServer: a health check of the embedded server that is never
// answered (a lock of its store held for good) ends Run with ErrStuck, after
// which the bus is broken and not ready, without waiting for the server, and
// Close does not wait for it either.
func TestStuckServer(t *testing.T) {
	b, srv, buf := stuckBus(t, nil)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- b.Run(t.Context()) }()
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not notice the stuck server")
	}
	if !errors.Is(err, ErrStuck) || time.Since(start) < b.stuckAfter {
		t.Fatalf("Run returned %v after %s, want ErrStuck after %s", err, time.Since(start), b.stuckAfter)
	}
	if err := b.Broken(); !errors.Is(err, ErrStuck) {
		t.Errorf("Broken: %v, want ErrStuck", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if err := b.Ready(ctx); !errors.Is(err, ErrStuck) {
		t.Errorf("Ready: %v, want ErrStuck", err)
	}
	closed := make(chan struct{})
	go func() { b.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for the stuck server")
	}
	if srv.Running() != true {
		t.Error("Close shut the stuck server down")
	}
	if !strings.Contains(buf.String(), "the embedded NATS server is stuck") {
		t.Errorf("nothing logged:\n%s", buf.String())
	}
}

// TestReadyDoesNotWaitForAStuckServer: before Run has taken the server for
// stuck, Ready answers within its context all the same, and the calls after
// the first wait for its check instead of leaving one more behind each.
func TestReadyDoesNotWaitForAStuckServer(t *testing.T) {
	entered := make(chan struct{}, 10)
	b, _, _ := stuckBus(t, entered)
	for range 3 {
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		if err := b.Ready(ctx); err == nil || !strings.Contains(err.Error(), "does not answer") {
			t.Errorf("Ready: %v, want the server not answering", err)
		}
		cancel()
	}
	// The calls after the first wait for its check, which waits for good.
	if n := len(entered); n != 1 {
		t.Errorf("%d checks of the server under way, want 1", n)
	}
}

// TestStopWhileStuck: a stop that comes while a check waits for the server
// waits for it no longer than stopWait, and then takes the server for
// stuck, so that Close does not wait for it.
func TestStopWhileStuck(t *testing.T) {
	entered := make(chan struct{}, 1)
	b, _, _ := stuckBus(t, entered)
	b.stuckAfter, b.stopWait = time.Minute, 500*time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	<-entered
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, ErrStuck) {
			t.Errorf("Run returned %v, want ErrStuck", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if err := b.Broken(); !errors.Is(err, ErrStuck) {
		t.Errorf("Broken: %v, want ErrStuck", err)
	}
}

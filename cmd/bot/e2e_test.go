package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/spf13/pflag"

	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/comm100/comm100test"
)

// startBot runs the real wiring in-process on a free port with a temporary
// store, configured by flags as a user would, and stops it when the test ends.
func startBot(t *testing.T, args ...string) *app {
	t.Helper()
	a, _ := runBot(t, t.TempDir(), args...)
	return a
}

// runBot starts the bot on storeDir and returns it with a stop function
// that shuts it down and waits (also called when the test ends).
func runBot(t *testing.T, storeDir string, args ...string) (*app, func()) {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	configFlags(fs)
	base := []string{
		"--http.addr", "127.0.0.1:0",
		"--nats.listen", "127.0.0.1:-1",
		"--nats.store_dir", storeDir,
		"--rules.dir", "../../rules",
		"--log.level", "debug",
	}
	if err := fs.Parse(append(base, args...)); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(fs, nil)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	a, err := newApp(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("bot stopped with error: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return a, stop
}

func startSim(t *testing.T, cfg comm100test.Config) (*comm100test.Server, []string) {
	t.Helper()
	sim := comm100test.New(cfg)
	hs := httptest.NewServer(sim)
	t.Cleanup(hs.Close)
	site, email, key := sim.Credentials()
	return sim, []string{
		"--comm100.base_url", hs.URL + comm100test.APIPrefix,
		"--comm100.site_id", site,
		"--comm100.email", email,
		"--comm100.api_key", key,
	}
}

func post(t *testing.T, url, file string) (int, map[string]any) {
	t.Helper()
	body, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	data, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("answer %d is not JSON: %s", resp.StatusCode, data)
	}
	return resp.StatusCode, out
}

// waitFor polls cond until it holds or the deadline passes.
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

// waitIdle waits until both durable consumers have nothing pending or
// unacknowledged, and are being read: the rules and the workers have
// finished starting and wait for more.
func waitIdle(t *testing.T, a *app) {
	t.Helper()
	idle := func(stream, consumer string) bool {
		c, err := a.bus.JS.Consumer(t.Context(), stream, consumer)
		if err != nil {
			return false
		}
		info, err := c.Info(t.Context())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.NumWaiting > 0
	}
	waitFor(t, "the rules and workers to be idle", 10*time.Second, func() bool {
		return idle(bus.EventsStream, bus.RulesConsumer) && idle(bus.ActionsStream, bus.WorkerConsumer)
	})
}

func ticketCalls(sim *comm100test.Server) []comm100test.Request {
	var out []comm100test.Request
	for _, r := range sim.Requests() {
		if r.Method == http.MethodPost && r.Path == "/v4/ticketing/tickets" {
			out = append(out, r)
		}
	}
	return out
}

func TestEndToEndLowRatedChatBecomesOneTicket(t *testing.T) {
	t.Parallel()
	sim, simArgs := startSim(t, comm100test.Config{})
	a := startBot(t, simArgs...)
	url := "http://" + a.Addr() + "/hooks/comm100"

	status, body := post(t, url, "../../rules/testdata/chat_ended_low_rating.json")
	if status != http.StatusAccepted || body["id"] != "chat.ended:3356721" {
		t.Fatalf("first post: got %d %v, want 202 with id chat.ended:3356721", status, body)
	}
	waitFor(t, "the ticket call", 10*time.Second, func() bool { return len(ticketCalls(sim)) >= 1 })

	status, body = post(t, url, "../../rules/testdata/chat_ended_low_rating.json")
	if status != http.StatusOK || body["duplicate"] != true {
		t.Fatalf("repeat post: got %d %v, want 200 with duplicate true", status, body)
	}
	waitIdle(t, a)

	calls := ticketCalls(sim)
	if len(calls) != 1 {
		t.Fatalf("got %d ticket calls, want exactly 1: %+v", len(calls), calls)
	}
	c := calls[0]
	if c.Status != http.StatusCreated {
		t.Errorf("ticket call answered %d, want 201", c.Status)
	}
	if !strings.Contains(c.Query, "siteId=10000") {
		t.Errorf("ticket call query %q lacks siteId", c.Query)
	}
	var ticket struct {
		Subject  string `json:"subject"`
		Priority string `json:"priority"`
		Message  struct {
			Body string `json:"body"`
		} `json:"message"`
	}
	if err := json.Unmarshal(c.Body, &ticket); err != nil {
		t.Fatal(err)
	}
	if want := "Low rating (1) from Jane Cooper"; ticket.Subject != want {
		t.Errorf("subject: got %q, want %q", ticket.Subject, want)
	}
	if ticket.Priority != "high" {
		t.Errorf("priority: got %q, want high", ticket.Priority)
	}
	if !strings.Contains(ticket.Message.Body, "Jane Cooper: I already did, twice.\nAlex (Agent)") {
		t.Errorf("message does not hold the transcript as lines: %q", ticket.Message.Body)
	}
}

func TestEndToEndRefusesBadInputAndPublishesNothing(t *testing.T) {
	t.Parallel()
	a := startBot(t)
	base := "http://" + a.Addr()
	tests := []struct {
		name, path, body string
		status           int
	}{
		{"not json", "/hooks/comm100", "nope", http.StatusBadRequest},
		{"unknown event", "/hooks/comm100", `{"event":"made_up"}`, http.StatusBadRequest},
		{"no chat id", "/hooks/comm100", `{"event":"chat_ended","chat":{}}`, http.StatusBadRequest},
		{"unknown source", "/hooks/shop", `{}`, http.StatusNotFound},
		{"too large", "/hooks/comm100", `{"event":"chat_ended","x":"` + strings.Repeat("a", 2<<20) + `"}`, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Post(base+tt.path, "application/json", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var out map[string]string
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				t.Fatalf("error body is not JSON: %v", err)
			}
			if resp.StatusCode != tt.status || out["error"] == "" {
				t.Errorf("got %d %v, want %d with an error message", resp.StatusCode, out, tt.status)
			}
		})
	}
	s, err := a.bus.JS.Stream(t.Context(), bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Errorf("EVENTS holds %d messages after only bad input, want 0", info.State.Msgs)
	}
}

func TestEndToEndBusDownAnswers503(t *testing.T) {
	t.Parallel()
	// An external NATS server that the test can stop under the running bot.
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(ns.Shutdown)
	a := startBot(t, "--nats.url", ns.ClientURL())
	waitIdle(t, a)

	ns.Shutdown()
	ns.WaitForShutdown()
	resp, err := http.Post("http://"+a.Addr()+"/hooks/comm100", "application/json",
		strings.NewReader(`{"event":"chat_started","visitor":{"chat_id":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("got %d Retry-After=%q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	ready, err := http.Get("http://" + a.Addr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	ready.Body.Close()
	if ready.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("readyz with the bus down: got %d, want 503", ready.StatusCode)
	}
}

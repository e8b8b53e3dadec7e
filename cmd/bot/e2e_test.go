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
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/comm100bot/bot/internal/actions"
	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/comm100/comm100test"
	"github.com/comm100bot/bot/internal/job"
	"github.com/comm100bot/bot/internal/secret"
	"github.com/comm100bot/bot/internal/testenv"
)

// startBot runs the real wiring in-process on a free port with a temporary
// store, configured by flags as a user would, and stops it when the test ends.
func startBot(t *testing.T, args ...string) *app {
	t.Helper()
	a, _ := runBot(t, t.TempDir(), args...)
	return a
}

// runBot starts the bot on storeDir and returns it with a stop function
// that shuts it down and waits (also called when the test ends). Secrets
// are not flags: args may still name them ("--comm100.api_key", "k"), and
// they are passed as the BOT_ environment variables a user would set.
func runBot(t *testing.T, storeDir string, args ...string) (*app, func()) {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	configFlags(fs)
	base := []string{
		"--http.addr", "127.0.0.1:0",
		"--http.admin_addr", "127.0.0.1:0",
		"--nats.listen", "127.0.0.1:-1",
		"--nats.store_dir", storeDir,
		"--rules.dir", "../../rules",
		"--log.level", "debug",
	}
	var flags, environ []string
	for i := 0; i < len(args); i++ {
		if key, ok := strings.CutPrefix(args[i], "--"); ok && isSecretKey(key) && i+1 < len(args) {
			environ = append(environ, "BOT_"+strings.ToUpper(strings.ReplaceAll(key, ".", "__"))+"="+args[i+1])
			i++
			continue
		}
		flags = append(flags, args[i])
	}
	if err := fs.Parse(append(base, flags...)); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(fs, environ)
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

// isSecretKey reports whether key is a config key of a secret.
func isSecretKey(key string) bool {
	for _, k := range configKeys(reflect.TypeFor[Config](), "") {
		if k.path == key && k.typ == reflect.TypeFor[secret.String]() {
			return true
		}
	}
	return false
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
		for _, name := range bus.PoolConsumers {
			if !idle(bus.ActionsStream, name) {
				return false
			}
		}
		return idle(bus.EventsStream, bus.RulesConsumer)
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
	const eventID = "chat.ended:8f14e45f-ceea-4e7a-9b21-3d5c6a7b8c90"
	if status != http.StatusAccepted || body["id"] != eventID {
		t.Fatalf("first post: got %d %v, want 202 with id %s", status, body, eventID)
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
		Subject      string         `json:"subject"`
		Priority     string         `json:"priority"`
		CustomFields map[string]any `json:"customFields"`
		Messages     []struct {
			SentByType string `json:"sentByType"`
			Body       string `json:"body"`
		} `json:"messages"`
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
	// The rule names the custom field "Chat ID"; Comm100 gets its id.
	if got := ticket.CustomFields[comm100test.ChatIDField]; got != "8f14e45f-ceea-4e7a-9b21-3d5c6a7b8c90" || len(ticket.CustomFields) != 1 {
		t.Errorf("custom fields: got %v, want the chat GUID under the id of Chat ID", ticket.CustomFields)
	}
	if len(ticket.Messages) != 1 || ticket.Messages[0].SentByType != "agent" ||
		!strings.Contains(ticket.Messages[0].Body, "Jane Cooper: I already did, twice.\n[09:49:58] Alex") {
		t.Errorf("first message does not hold the transcript as lines: %+v", ticket.Messages)
	}
	if n := len(fieldCalls(sim)); n != 1 {
		t.Errorf("got %d calls to ticketing/fields, want 1", n)
	}
}

// fieldCalls are the simulator's calls to the ticket field list.
func fieldCalls(sim *comm100test.Server) []comm100test.Request {
	var out []comm100test.Request
	for _, r := range sim.Requests() {
		if r.Path == "/v4/ticketing/fields" {
			out = append(out, r)
		}
	}
	return out
}

// TestUnknownCustomFieldGoesToDLQNamingIt: a rule naming a ticket custom field
// that does not exist fails for good, and the dead letter says which field.
func TestUnknownCustomFieldGoesToDLQNamingIt(t *testing.T) {
	t.Parallel()
	sim, simArgs := startSim(t, comm100test.Config{})
	a := startBot(t, simArgs...)
	pub := &actions.Queue{JS: a.bus.JS}
	j := &job.Job{ID: "ev-field/r/0", EventID: "ev-field", Rule: "r", Action: "comm100.ticket.create",
		Params: map[string]any{"subject": "x", "custom_fields": map[string]any{"chat_id": "1"}}, Created: time.Now()}
	if err := pub.Publish(t.Context(), j); err != nil {
		t.Fatal(err)
	}
	dlq := &actions.DLQ{JS: a.bus.JS}
	var dead []actions.DeadLetter
	waitFor(t, "the job to reach the DLQ", 10*time.Second, func() bool {
		dead, _ = dlq.List(t.Context())
		return len(dead) == 1
	})
	if d := dead[0]; d.Reason != "permanent failure" || !strings.Contains(d.Error, `custom field "chat_id"`) ||
		!strings.Contains(d.Error, `"Chat ID"`) {
		t.Errorf("dead letter: reason %q error %q, want a permanent failure naming chat_id and the known fields", d.Reason, d.Error)
	}
	if n := len(ticketCalls(sim)); n != 0 {
		t.Errorf("got %d ticket calls, want none", n)
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
		// Longer than NATS's 4 KB protocol line as part of a subject: the
		// server would close the connection, for good.
		{"event type too long", "/hooks/comm100", `{"event":"` + strings.Repeat("a", 5000) + `","eventId":"1","chat":{"id":1}}`, http.StatusBadRequest},
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
	if status, out := post(t, base+"/hooks/comm100", "../../rules/testdata/chat_ended_low_rating.json"); status != http.StatusAccepted {
		t.Errorf("a good webhook after the bad ones: got %d %v, want 202", status, out)
	}
	health, err := http.Get("http://" + a.AdminAddr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	health.Body.Close()
	if health.StatusCode != http.StatusOK {
		t.Errorf("healthz: got %d, want 200", health.StatusCode)
	}
}

func TestEndToEndBusDownAnswers503(t *testing.T) {
	t.Parallel()
	// An external NATS server that the test can stop under the running bot.
	ns := testenv.JetStream(t)
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
	ready, err := http.Get("http://" + a.AdminAddr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	ready.Body.Close()
	if ready.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("readyz with the bus down: got %d, want 503", ready.StatusCode)
	}
}

// TestRepeatAfterTheDedupWindowRunsNoDoneJobAgain pins what the README says
// of repeats older than nats.dedup_window: the event is stored again and its
// rules run again, but each job that already succeeded is recognised by its
// id in the jobs_done bucket and acknowledged without a second call.
func TestRepeatAfterTheDedupWindowRunsNoDoneJobAgain(t *testing.T) {
	t.Parallel()
	rules := writeRules(t, `rules:
  - name: ticket
    on: comm100.chat.ended
    actions:
      - do: comm100.ticket.create
        with: { subject: "Chat {{ data.chat.id }}" }
`)
	sim, simArgs := startSim(t, comm100test.Config{})
	a := startBot(t, append(simArgs, "--rules.dir", rules, "--nats.dedup_window", "1s")...)
	url := "http://" + a.Addr() + "/hooks/comm100"
	body := "../../rules/testdata/chat_ended_low_rating.json"
	if status, _ := post(t, url, body); status != http.StatusAccepted {
		t.Fatalf("first post: got %d, want 202", status)
	}
	waitFor(t, "the ticket call", 10*time.Second, func() bool { return len(ticketCalls(sim)) == 1 })
	waitIdle(t, a)
	// The job was stored after the event, so its id stays in the ACTIONS
	// window a little longer than the event's in the EVENTS window: let both
	// windows pass, or the repeat's job may be dropped before the pool sees it.
	idle := time.Now()
	waitFor(t, "the job's duplicate window to pass", 5*time.Second, func() bool { return time.Since(idle) > 1500*time.Millisecond })
	// Repeat until the window has passed and the event is stored again.
	waitFor(t, "a repeat after the duplicate window to be stored", 20*time.Second, func() bool {
		status, _ := post(t, url, body)
		return status == http.StatusAccepted
	})
	waitFor(t, "the done job to be recognised", 10*time.Second, func() bool {
		return metricValue(t, a, `bot_jobs_total{action="comm100.ticket.create",outcome="duplicate"}`) == "1"
	})
	waitIdle(t, a)
	if n := len(ticketCalls(sim)); n != 1 {
		t.Errorf("got %d ticket calls, want 1", n)
	}
}

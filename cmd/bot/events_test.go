package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/comm100bot/bot/internal/comm100/comm100test"
	"github.com/comm100bot/bot/internal/job"
)

// TestEndToEndEventsReplay: after a rule is added, `bot events replay`
// runs the rules again over the events stored lately. The new rule opens
// its ticket for each of them; the rule that ran the first time opens no
// second one (its job's record is found); an event stored twice (replayed
// before) is replayed once; and a replay reaching further back than the
// record of finished jobs is refused.
func TestEndToEndEventsReplay(t *testing.T) {
	t.Parallel()
	first := `rules:
  - name: chat-ticket
    on: comm100.chat.ended
    actions:
      - do: comm100.ticket.create
        with: { subject: "Chat {{ data.chat.id }}" }
`
	dir := writeRules(t, first)
	sim, simArgs := startSim(t, comm100test.Config{})
	a := startBot(t, append(simArgs, "--rules.dir", dir, "--rules.watch=false")...)
	url := "http://" + a.Addr() + "/hooks/comm100"
	for _, id := range []int{5000031, 5000032} {
		postJSON(t, url, map[string]any{"event": "chat_ended", "chat": map[string]any{"id": id}})
	}
	waitIdle(t, a)
	if got := ticketSubjects(sim); len(got) != 2 {
		t.Fatalf("tickets before the new rule: %v, want 2", got)
	}

	natsURL := a.bus.Conn.ConnectedUrl()
	events := func(args ...string) (string, error) {
		var out strings.Builder
		err := run(t.Context(), append(append([]string{"events"}, args...), "--nats.url", natsURL), nil, &out, &out)
		return out.String(), err
	}
	if out, err := events("replay", "--since", "1h", "--dry-run"); err != nil || !strings.Contains(out, "would replay 2 event(s)") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if _, err := events("replay", "--since", "49h"); err == nil || !strings.Contains(err.Error(), "finished jobs are remembered for 48h0m0s") {
		t.Errorf("a replay past the record of finished jobs: got %v, want it refused", err)
	}
	if _, err := events("replay"); err == nil || !strings.Contains(err.Error(), "want --since DURATION") {
		t.Errorf("no --since: got %v", err)
	}

	second := first + `  - name: chat-follow-up
    on: comm100.chat.ended
    actions:
      - do: comm100.ticket.create
        with: { subject: "Follow up {{ data.chat.id }}" }
`
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(second), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := a.rules.Reload("test"); err != nil {
		t.Fatal(err)
	}
	out, err := events("replay", "--since", "1h")
	if err != nil || !strings.Contains(out, "replayed 2 event(s)") {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	waitIdle(t, a)
	got := ticketSubjects(sim)
	for _, s := range []string{"Chat 5000031", "Chat 5000032", "Follow up 5000031", "Follow up 5000032"} {
		if got[s].IsZero() {
			t.Errorf("no ticket %q", s)
		}
	}
	if n := len(ticketCalls(sim)); n != 4 {
		t.Errorf("%d tickets created, want 4 (one per rule and chat): %v", n, got)
	}

	if got := metricValue(t, a, `bot_rules_events_total{outcome="matched"}`); got != "4" {
		t.Errorf("events evaluated after the replay: %s, want 4", got)
	}

	// The two copies stored by the replay are events too: a second replay,
	// at once, takes each event once, and the rules see them again.
	out, err = events("replay", "--since", "1h")
	if err != nil || !strings.Contains(out, "replayed 2 event(s)") || !strings.Contains(out, "2 stored copies of them passed over") {
		t.Fatalf("second replay: %v\n%s", err, out)
	}
	waitIdle(t, a)
	if got := metricValue(t, a, `bot_rules_events_total{outcome="matched"}`); got != "6" {
		t.Errorf("events evaluated after the second replay: %s, want 6", got)
	}
	if n := len(ticketCalls(sim)); n != 4 {
		t.Errorf("after a second replay: %d tickets created, want still 4", n)
	}

	// A command's own flags are not config keys (--all once was); and a
	// dead letter that cannot be redriven (a job that could not be
	// decoded) is passed over, not the end of the redrive.
	if _, err := a.bus.JS.Publish(t.Context(), job.RunSubjectPrefix+"log.foreign", []byte("not a job")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the foreign message in the DLQ", 10*time.Second, func() bool { return metricValue(t, a, "bot_dlq_jobs") == "1" })
	var out2 strings.Builder
	if err := run(t.Context(), []string{"dlq", "redrive", "--all", "--nats.url", natsURL}, nil, &out2, &out2); err != nil || !strings.Contains(out2.String(), "skipped") {
		t.Errorf("bot dlq redrive --all: %v\n%s", err, out2.String())
	}
}

// TestSameIDFromTwoSources: two sources may use the same ids; a rule that
// listens to both makes a job for each event, and neither is taken for a
// repeat of the other.
func TestSameIDFromTwoSources(t *testing.T) {
	t.Parallel()
	dir := writeRules(t, `rules:
  - name: order-ticket
    on: ["shop.order.created", "crm.order.created"]
    actions:
      - do: comm100.ticket.create
        with: { subject: "{{ source }} order {{ data.id }}" }
`)
	config := filepath.Join(t.TempDir(), "bot.yaml")
	if err := os.WriteFile(config, []byte(`sources:
  shop: {kind: generic, bearer: shop-t0ken, type: body.topic, id: string(body.id)}
  crm: {kind: generic, bearer: crm-t0ken, type: body.topic, id: string(body.id)}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	sim, simArgs := startSim(t, comm100test.Config{})
	a := startBot(t, append(simArgs, "--config", config, "--rules.dir", dir, "--rules.watch=false")...)
	for _, src := range []string{"shop", "crm"} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+a.Addr()+"/hooks/"+src, strings.NewReader(`{"topic":"order.created","id":1001}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+src+"-t0ken")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("%s: got %d, want 202", src, resp.StatusCode)
		}
	}
	waitIdle(t, a)
	got := ticketSubjects(sim)
	if got["shop order 1001"].IsZero() || got["crm order 1001"].IsZero() || len(ticketCalls(sim)) != 2 {
		t.Errorf("tickets: %v, want one per source", got)
	}
}

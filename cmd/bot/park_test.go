package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/comm100bot/bot/internal/comm100/comm100test"
)

const parkRulesV1 = `rules:
  - name: chat-ticket
    on: comm100.chat.ended
    actions:
      - do: comm100.ticket.create
        with: { subject: "Chat {{ data.chat.id }}" }
  - name: low-rating
    on: comm100.chat.ended
    when: data.chat.rating > 0 && data.chat.rating <= 2
    actions:
      - do: comm100.ticket.create
        with: { subject: "Low rating on {{ data.chat.id }}" }
`

// TestEndToEndParkedEventIsListedAndRedriven: a chat rated "one" is
// accepted; the rule that compares the rating with a number cannot evaluate
// it, so the event is parked where `bot dlq list` shows it with its event
// id, rule and error, and counted. Once the rule is fixed, `bot dlq redrive`
// runs the rules on it again: the fixed rule opens its ticket, and the rule
// that ran the first time does not open a second one, whether its job's
// repeat is absorbed by the ACTIONS duplicate window or, after the window,
// by the record of done jobs.
func TestEndToEndParkedEventIsListedAndRedriven(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		window time.Duration
		// duplicates is how many repeated jobs reach the pool (and are not run).
		duplicates string
	}{
		{"inside the duplicate window", 2 * time.Minute, ""},
		{"after the duplicate window", time.Second, "1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rules := writeRules(t, parkRulesV1)
			sim, simArgs := startSim(t, comm100test.Config{})
			a := startBot(t, append(simArgs, "--rules.dir", rules, "--rules.watch=false",
				"--nats.dedup_window", tt.window.String())...)
			url := "http://" + a.Addr() + "/hooks/comm100"
			postJSON(t, url, map[string]any{"event": "chat_ended", "chat": map[string]any{"id": 5000021, "rating": "one"},
				"visitor": map[string]any{"name": "Jane"}})
			waitIdle(t, a)
			stored := time.Now() // the event and its first jobs are stored by now
			if got := ticketSubjects(sim); len(got) != 1 || got["Chat 5000021"].IsZero() {
				t.Fatalf("tickets before the fix: %v, want only Chat 5000021", got)
			}
			if got := metricValue(t, a, `bot_rules_parked_total{reason="evaluate"}`); got != "1" {
				t.Errorf("bot_rules_parked_total{reason=\"evaluate\"}: got %q, want 1", got)
			}
			if got := metricValue(t, a, "bot_dlq_events"); got != "1" {
				t.Errorf("bot_dlq_events: got %q, want 1", got)
			}
			if got := metricValue(t, a, "bot_dlq_jobs"); got != "0" {
				t.Errorf("bot_dlq_jobs: got %q, want 0: a parked event is not a dead job", got)
			}

			natsURL := a.bus.Conn.ConnectedUrl()
			dlq := func(args ...string) string {
				t.Helper()
				var out strings.Builder
				if err := run(t.Context(), append(append([]string{"dlq"}, args...), "--nats.url", natsURL), nil, &out, &out); err != nil {
					t.Fatalf("bot dlq %s: %v\n%s", strings.Join(args, " "), err, out.String())
				}
				return out.String()
			}
			list := dlq("list")
			t.Logf("bot dlq list:\n%s", list)
			row := regexp.MustCompile(`(?m)^(\d+)\s+\S+\s+chat\.ended:5000021\s+low-rating\s+evaluate\s+.*string.*$`).FindStringSubmatch(list)
			if row == nil || !strings.Contains(list, "1 parked event(s)") {
				t.Fatalf("bot dlq list does not show the parked event:\n%s", list)
			}
			show := dlq("show", row[1])
			for _, want := range []string{`"kind": "event"`, `"event_id": "chat.ended:5000021"`, `"rule": "low-rating"`, `"rating": "one"`} {
				if !strings.Contains(show, want) {
					t.Errorf("bot dlq show %s lacks %s:\n%s", row[1], want, show)
				}
			}

			fixed := strings.Replace(parkRulesV1, "when: data.chat.rating > 0 && data.chat.rating <= 2",
				`when: 'string(data.chat.rating) == "one" || data.chat.rating > 0 && data.chat.rating <= 2'`, 1)
			if err := os.WriteFile(filepath.Join(rules, "rules.yaml"), []byte(fixed), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := a.rules.Reload("test"); err != nil {
				t.Fatal(err)
			}
			// The server forgets ids a little after the window (a timer
			// removes them): leave it half a second more.
			waitFor(t, "the duplicate window to pass", tt.window+5*time.Second, func() bool {
				return tt.window > time.Minute || time.Since(stored) > tt.window+500*time.Millisecond
			})
			if out := dlq("redrive", row[1]); !strings.Contains(out, "event chat.ended:5000021") {
				t.Errorf("bot dlq redrive: %s", out)
			}
			waitFor(t, "the fixed rule's ticket", 10*time.Second, func() bool {
				return !ticketSubjects(sim)["Low rating on 5000021"].IsZero()
			})
			waitIdle(t, a)
			if calls := ticketCalls(sim); len(calls) != 2 {
				t.Errorf("got %d ticket calls after the redrive, want 2: %v", len(calls), ticketSubjects(sim))
			}
			if got := metricValue(t, a, `bot_jobs_total{action="comm100.ticket.create",outcome="duplicate"}`); got != tt.duplicates {
				t.Errorf("duplicate jobs seen by the pool: got %q, want %q", got, tt.duplicates)
			}
			if list := dlq("list"); !strings.Contains(list, "0 parked event(s)") {
				t.Errorf("after the redrive:\n%s", list)
			}
		})
	}
}

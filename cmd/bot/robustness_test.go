package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/comm100/comm100test"
)

// TestEventsAndJobsSurviveTheBus: numbers stay exact through EVENTS and
// ACTIONS, a job whose value JSON cannot hold is skipped without holding
// back its siblings, and consumers deleted under a running bot come back.
func TestEventsAndJobsSurviveTheBus(t *testing.T) {
	t.Parallel()
	rules := writeRules(t, `rules:
  - name: exact-numbers
    on: comm100.chat.ended
    actions:
      - do: comm100.ticket.create
        with:
          subject: "Views {{ data.visitor.page_views }}"
          custom_fields: { Chat ID: "{{ data.visitor.page_views }}" }
  - name: divides-by-zero
    on: comm100.chat.ended
    actions:
      - do: comm100.ticket.create
        with:
          subject: broken
          custom_fields: { Chat ID: "{{ data.visitor.page_views / 0 }}" }
`)
	sim, simArgs := startSim(t, comm100test.Config{})
	a := startBot(t, append(simArgs, "--rules.dir", rules)...)
	url := "http://" + a.Addr() + "/hooks/comm100"
	chat := func(id, views int) map[string]any {
		return map[string]any{"event": "chat_ended", "chat": map[string]any{"id": id},
			"visitor": map[string]any{"name": "x", "page_views": views}}
	}

	postJSON(t, url, chat(1, 9007199254740993)) // above 2^53: a float64 would change it
	waitIdle(t, a)
	calls := ticketCalls(sim)
	if len(calls) != 1 {
		t.Fatalf("got %d ticket calls, want 1 (the broken job skipped)", len(calls))
	}
	var body struct {
		Subject      string
		CustomFields map[string]json.RawMessage
	}
	_ = json.Unmarshal(calls[0].Body, &body)
	views := body.CustomFields[comm100test.ChatIDField] // the field named "Chat ID"
	if body.Subject != "Views 9007199254740993" || string(views) != "9007199254740993" {
		t.Errorf("got subject %q views %s, want the number exact", body.Subject, views)
	}
	if got := metricValue(t, a, `bot_rules_events_total{outcome="error"}`); got != "1" {
		t.Errorf("events with errors: got %q, want 1", got)
	}

	// An operator deletes the consumers: they are created again.
	for _, c := range [][2]string{{bus.EventsStream, bus.RulesConsumer}, {bus.ActionsStream, bus.WorkerConsumer}, {bus.ActionsStream, bus.Comm100Consumer}} {
		if err := a.bus.JS.DeleteConsumer(t.Context(), c[0], c[1]); err != nil {
			t.Fatal(err)
		}
	}
	postJSON(t, url, chat(2, 7))
	waitFor(t, "the event after the consumers were deleted", 20*time.Second, func() bool {
		return len(ticketCalls(sim)) == 2
	})
	if got := ticketSubjects(sim); got["Views 7"].IsZero() {
		t.Errorf("got tickets %v", got)
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/comm100bot/bot/internal/comm100/comm100test"
	"github.com/comm100bot/bot/internal/job"
)

func writeRules(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func postJSON(t *testing.T, url string, body any) {
	t.Helper()
	data, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("post: got %d, want 202", resp.StatusCode)
	}
}

func ticketSubjects(sim *comm100test.Server) map[string]time.Time {
	out := map[string]time.Time{}
	for _, c := range ticketCalls(sim) {
		var b struct{ Subject string }
		_ = json.Unmarshal(c.Body, &b)
		out[b.Subject] = c.Time
	}
	return out
}

// TestDelayedJobSurvivesRestartAndCancelledOneNeverFires: two chats end, each
// schedules a follow-up ticket 3s later; the second chat is wrapped up, which
// cancels its follow-up. The bot is restarted before the follow-ups are due.
func TestDelayedJobSurvivesRestartAndCancelledOneNeverFires(t *testing.T) {
	const delay = 3 * time.Second
	rules := writeRules(t, `rules:
  - name: follow-up
    on: comm100.chat.ended
    actions:
      - do: comm100.ticket.create
        after: 3s
        key: "chat-{{ data.chat_id }}"
        with: { subject: "Follow up {{ data.chat_id }}" }
  - name: cancel-follow-up
    on: comm100.chat.wrapped_up
    actions:
      - do: schedule.cancel
        with: { key: "chat-{{ data.chat_id }}" }
`)
	sim, simArgs := startSim(t, comm100test.Config{})
	store := t.TempDir()
	args := append(simArgs, "--rules.dir", rules)
	a, stop := runBot(t, store, args...)
	url := "http://" + a.Addr() + "/hooks/comm100"
	posted := time.Now()
	postJSON(t, url, map[string]any{"event": "chat_ended", "chat": map[string]any{"id": 1}})
	postJSON(t, url, map[string]any{"event": "chat_ended", "chat": map[string]any{"id": 2}})
	waitFor(t, "both follow-ups to be scheduled", 5*time.Second, func() bool {
		return metricValue(t, a, "bot_scheduled_jobs") == "2"
	})
	postJSON(t, url, map[string]any{"event": "chat_wrapped_up", "chat_id": 2, "wrapup": map[string]any{}})
	waitFor(t, "the second follow-up to be cancelled", 5*time.Second, func() bool {
		return metricValue(t, a, "bot_scheduled_jobs") == "1"
	})
	stop()
	if n := len(ticketCalls(sim)); n != 0 {
		t.Fatalf("%d tickets before the follow-ups were due", n)
	}

	runBot(t, store, args...)
	waitFor(t, "the follow-up of chat 1", 10*time.Second, func() bool {
		_, ok := ticketSubjects(sim)["Follow up 1"]
		return ok
	})
	fired := ticketSubjects(sim)["Follow up 1"]
	if early := posted.Add(delay).Sub(fired); early > 0 {
		t.Errorf("follow-up fired %s early", early)
	}
	if late := fired.Sub(posted.Add(delay)); late > 2*time.Second {
		t.Errorf("follow-up fired %s late", late)
	}
	// Give the cancelled one every chance to fire.
	deadline := posted.Add(delay + 2*time.Second)
	waitFor(t, "the cancelled follow-up's due time to pass", 10*time.Second, func() bool { return time.Now().After(deadline) })
	if _, ok := ticketSubjects(sim)["Follow up 2"]; ok {
		t.Error("the cancelled follow-up fired")
	}
	if n := len(ticketCalls(sim)); n != 1 {
		t.Errorf("got %d ticket calls, want 1", n)
	}
}

// TestJobRedeliveredAfterSuccessRunsOnce publishes the same job twice under
// different message ids, as a crash between the call and the ack, or a
// re-publish after the duplicate window, would: Comm100 sees one call.
func TestJobRedeliveredAfterSuccessRunsOnce(t *testing.T) {
	sim, simArgs := startSim(t, comm100test.Config{})
	a := startBot(t, simArgs...)
	j := job.Job{
		ID: "e1/r/0", EventID: "e1", Rule: "r", Action: "comm100.ticket.create",
		Params: map[string]any{"subject": "once"}, Created: time.Now(),
	}
	data, _ := json.Marshal(j)
	for i := range 2 {
		msg := &nats.Msg{Subject: j.RunSubject(), Data: data, Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("copy-%d", i))
		if _, err := a.bus.JS.PublishMsg(t.Context(), msg); err != nil {
			t.Fatal(err)
		}
		waitIdle(t, a)
	}
	if n := len(ticketCalls(sim)); n != 1 {
		t.Fatalf("got %d ticket calls, want 1", n)
	}
	if got := metricValue(t, a, `bot_jobs_total{action="comm100.ticket.create",outcome="duplicate"}`); got != "1" {
		t.Errorf("duplicate jobs metric: got %q, want 1", got)
	}
}

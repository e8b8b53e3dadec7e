package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/comm100bot/bot/internal/comm100/comm100test"
)

const reloadRule = `rules:
  - name: low-rated-chat-ticket
    on: comm100.chat.ended
    when: data.chat.rating <= 2
    actions:
      - do: comm100.ticket.create
        with:
          subject: "SUBJECT {{ data.visitor.name }}"
`

// chatEnded returns a chat-ended webhook body for chat id.
func chatEnded(t *testing.T, id int) []byte {
	t.Helper()
	var body map[string]any
	data, err := os.ReadFile("../../rules/testdata/chat_ended_low_rating.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &body); err != nil {
		t.Fatal(err)
	}
	body["chat"].(map[string]any)["id"] = id
	out, _ := json.Marshal(body)
	return out
}

func metricValue(t *testing.T, a *app, name string) string {
	t.Helper()
	resp, err := http.Get("http://" + a.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

// TestHotReload edits the rules of a running bot: a broken edit is refused
// and the old rules keep working; a fixed edit takes effect without restart.
func TestHotReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "rules.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(strings.Replace(reloadRule, "SUBJECT", "Old", 1))
	sim, simArgs := startSim(t, comm100test.Config{})
	a := startBot(t, append(simArgs, "--rules.dir", dir, "--rules.debounce", "50ms")...)
	url := "http://" + a.Addr() + "/hooks/comm100"
	postChat := func(id int) {
		t.Helper()
		resp, err := http.Post(url, "application/json", bytes.NewReader(chatEnded(t, id)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("post chat %d: got %d, want 202", id, resp.StatusCode)
		}
	}
	subjects := func() []string {
		var out []string
		for _, c := range ticketCalls(sim) {
			var b struct{ Subject string }
			_ = json.Unmarshal(c.Body, &b)
			out = append(out, b.Subject)
		}
		return out
	}
	waitSubjects := func(want ...string) {
		t.Helper()
		waitFor(t, "tickets "+strings.Join(want, ", "), 10*time.Second, func() bool {
			return strings.Join(subjects(), "|") == strings.Join(want, "|")
		})
	}

	postChat(1)
	waitSubjects("Old Jane Cooper")

	// A broken edit: the file watcher reloads, the load is refused.
	write(strings.Replace(reloadRule, "data.chat.rating <= 2", "data.chat.rating <=", 1))
	waitFor(t, "the broken reload to be refused", 10*time.Second, func() bool {
		return metricValue(t, a, "bot_rules_reload_success") == "0"
	})
	resp, err := http.Post("http://"+a.AdminAddr()+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var answer struct{ Errors []string }
	_ = json.NewDecoder(resp.Body).Decode(&answer)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || len(answer.Errors) != 1 ||
		!strings.Contains(answer.Errors[0], "rules.yaml:4:") {
		t.Fatalf("POST /-/reload: got %d %v, want 400 with the error at rules.yaml:4", resp.StatusCode, answer.Errors)
	}
	postChat(2)
	waitSubjects("Old Jane Cooper", "Old Jane Cooper")

	// The fix takes effect without a restart.
	write(strings.Replace(reloadRule, "SUBJECT", "New", 1))
	waitFor(t, "the fixed rules to load", 10*time.Second, func() bool {
		return metricValue(t, a, "bot_rules_reload_success") == "1"
	})
	postChat(3)
	waitSubjects("Old Jane Cooper", "Old Jane Cooper", "New Jane Cooper")
}

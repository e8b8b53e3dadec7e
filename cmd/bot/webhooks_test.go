package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// webhookAPI is Comm100's livechat/webhooks API, as far as sync uses it: a
// bare-array list, create, delete. It checks the API-key credentials.
type webhookAPI struct {
	mu    sync.Mutex
	hooks []map[string]any
	next  int
	calls []string
}

func (a *webhookAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, r.Method+" "+r.URL.Path)
	if user, key, ok := r.BasicAuth(); !ok || user != "bot@example.com" || key != "k" || r.URL.Query().Get("siteId") != "10000" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v4/livechat/webhooks":
		_ = json.NewEncoder(w).Encode(a.hooks)
	case r.Method == http.MethodPost && r.URL.Path == "/v4/livechat/webhooks":
		var h map[string]any
		if err := json.NewDecoder(r.Body).Decode(&h); err != nil || h["event"] == "" || h["targetUrl"] == "" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		a.next++
		h["id"] = fmt.Sprintf("wh-%d", a.next)
		a.hooks = append(a.hooks, h)
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(h)
	case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/v4/livechat/webhooks/"):
		id := strings.TrimPrefix(r.URL.Path, "/v4/livechat/webhooks/")
		i := slices.IndexFunc(a.hooks, func(h map[string]any) bool { return fmt.Sprint(h["id"]) == id })
		if i < 0 {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		a.hooks = slices.Delete(a.hooks, i, i+1)
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// state is the subscriptions as "event targetUrl", sorted.
func (a *webhookAPI) state() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, h := range a.hooks {
		out = append(out, fmt.Sprintf("%v %v", h["event"], h["targetUrl"]))
	}
	slices.Sort(out)
	return out
}

func TestComm100WebhooksSync(t *testing.T) {
	const target = "https://bot.example.com/hooks/comm100/s3cr3t-t0ken"
	api := &webhookAPI{next: 100, hooks: []map[string]any{
		{"id": 1, "event": "chatEnds", "targetUrl": target},                                          // kept (numeric id)
		{"id": "2", "event": "chatEnds", "targetUrl": target},                                        // duplicate: removed
		{"id": "3", "event": "chatStarts", "targetUrl": "https://bot.example.com/hooks/comm100/old"}, // old token: removed
		{"id": "4", "event": "visitorLeaves", "targetUrl": target},                                   // not a live-chat event we take: removed
		{"id": "5", "event": "chatEnds", "targetUrl": "https://crm.example.com/comm100"},             // someone else's: kept
		{"id": "6", "event": "chatEnds", "targetUrl": "https://bot.example.com/hooks/comm100-eu"},    // another source: kept
	}}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	config := filepath.Join(dir, "bot.yaml")
	if err := os.WriteFile(config, []byte("sources:\n  comm100:\n    kind: comm100\n    token: s3cr3t-t0ken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	environ := []string{
		"BOT_COMM100__BASE_URL=" + srv.URL + "/v4/",
		"BOT_COMM100__SITE_ID=10000",
		"BOT_COMM100__EMAIL=bot@example.com",
		"BOT_COMM100__API_KEY=k",
	}
	sync := func() string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		err := run(t.Context(), []string{"comm100", "webhooks", "sync", "--public-url", "https://bot.example.com/", "--config", config}, environ, &stdout, &stderr)
		if err != nil {
			t.Fatalf("sync: %v\n%s", err, stderr.String())
		}
		if strings.Contains(stdout.String(), "s3cr3t") {
			t.Errorf("sync printed the token:\n%s", stdout.String())
		}
		return stdout.String()
	}

	out := sync()
	want := []string{
		"agentStatusChanges " + target,
		"chatEnds " + target,
		"chatEnds https://bot.example.com/hooks/comm100-eu",
		"chatEnds https://crm.example.com/comm100",
		"chatIsRequested " + target,
		"chatIsTransferred " + target,
		"chatIsWrappedUp " + target,
		"chatStarts " + target,
		"offlineMessageIsSubmitted " + target,
	}
	slices.Sort(want)
	if diff := cmp.Diff(want, api.state()); diff != "" {
		t.Errorf("after the first sync (-want +got):\n%s\noutput:\n%s", diff, out)
	}
	for _, line := range []string{"kept     chatEnds", "created  chatStarts", "removed  chatEnds                   2", "removed  chatStarts                 3 (https://bot.example.com/hooks/comm100/<token>)", "removed  visitorLeaves"} {
		if !strings.Contains(out, line) {
			t.Errorf("output lacks %q:\n%s", line, out)
		}
	}

	// A second sync changes nothing.
	api.mu.Lock()
	api.calls = nil
	api.mu.Unlock()
	out = sync()
	if diff := cmp.Diff(want, api.state()); diff != "" {
		t.Errorf("after the second sync (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"GET /v4/livechat/webhooks"}, api.calls); diff != "" {
		t.Errorf("second sync made calls beyond the list (-want +got):\n%s", diff)
	}
	if strings.Count(out, "kept") != len(liveChatSubscriptions) {
		t.Errorf("second sync output:\n%s\nwant %d kept lines", out, len(liveChatSubscriptions))
	}
}

func TestComm100WebhooksSyncRefuses(t *testing.T) {
	tests := []struct {
		name string
		args []string
		err  string
	}{
		{"no public url", []string{"comm100", "webhooks", "sync"}, "--public-url is required"},
		{"bad public url", []string{"comm100", "webhooks", "sync", "--public-url", "bot.example.com"}, "want an absolute http(s) URL"},
		{"unknown source", []string{"comm100", "webhooks", "sync", "--public-url", "https://b", "--source", "shop"}, "not a configured source of kind comm100"},
		{"no credentials", []string{"comm100", "webhooks", "sync", "--public-url", "https://b"}, "the Comm100 credentials are needed"},
		{"unknown subcommand", []string{"comm100", "webhooks", "list"}, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			environ := []string{"BOT_COMM100__BASE_URL=http://127.0.0.1:1/v4/"}
			if tt.name == "bad public url" {
				environ = append(environ, "BOT_COMM100__SITE_ID=1", "BOT_COMM100__EMAIL=a@b.c", "BOT_COMM100__API_KEY=k")
			}
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), tt.args, environ, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("got %v, want an error containing %q", err, tt.err)
			}
		})
	}
}

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/comm100bot/bot/internal/actions"
	"github.com/comm100bot/bot/internal/comm100"
	"github.com/comm100bot/bot/internal/comm100/comm100test"
	"github.com/comm100bot/bot/internal/secret"
	"github.com/comm100bot/bot/internal/testenv"
)

// TestComm100WebhooksSync runs `bot comm100 webhooks sync` against the
// simulator, which holds subscriptions of this bot (one right, a duplicate,
// an old token) and of others: the bot's become one per live-chat event,
// the others stay, and a second sync changes nothing.
func TestComm100WebhooksSync(t *testing.T) {
	t.Parallel()
	const target = "https://bot.example.com/hooks/comm100/s3cr3t-t0ken"
	sim, simArgs := startSim(t, comm100test.Config{})
	base := simArgs[slices.Index(simArgs, "--comm100.base_url")+1]
	site, email, key := sim.Credentials()
	client, err := comm100.New(comm100.Config{BaseURL: base, SiteID: site, Email: email, APIKey: secret.String(key)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ids []comm100.ID
	for _, h := range [][2]string{
		{"chatEnds", target}, // kept
		{"chatEnds", target}, // duplicate: removed
		{"chatStarts", "https://bot.example.com/hooks/comm100/old"}, // old token: removed
		{"chatEnds", "https://crm.example.com/comm100"},             // someone else's: kept
		{"chatEnds", "https://bot.example.com/hooks/comm100-eu"},    // another source: kept
	} {
		hook, err := client.CreateWebhook(t.Context(), h[0], h[1])
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, hook.ID)
	}
	dir := t.TempDir()
	config := filepath.Join(dir, "bot.yaml")
	if err := os.WriteFile(config, []byte("sources:\n  comm100:\n    kind: comm100\n    token: s3cr3t-t0ken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The running bot, whose Comm100 budget the command's calls spend too.
	bot := startBot(t, simArgs...)
	environ := []string{
		"BOT_COMM100__BASE_URL=" + base,
		"BOT_COMM100__SITE_ID=" + site,
		"BOT_COMM100__EMAIL=" + email,
		"BOT_COMM100__API_KEY=" + key,
		"BOT_NATS__LISTEN=" + strings.TrimPrefix(bot.bus.Conn.ConnectedUrl(), "nats://"),
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
	state := func() []string {
		t.Helper()
		hooks, err := client.Webhooks(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, h := range hooks {
			out = append(out, h.Event+" "+h.TargetURL)
		}
		slices.Sort(out)
		return out
	}

	before := len(sim.Requests())
	out := sync()
	made := len(sim.Requests()) - before
	kv, err := bot.bus.JS.KeyValue(t.Context(), actions.BudgetBucket)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := kv.Get(t.Context(), site)
	if err != nil {
		t.Fatalf("the bot's budget %s: %v", site, err)
	}
	// One line per call: "<id> ended <lease> <time>".
	if spent := strings.Count(string(entry.Value()), " ended "); made == 0 || spent != made {
		t.Errorf("sync made %d calls; the bot's budget counts %d:\n%s", made, spent, entry.Value())
	}
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
	if diff := cmp.Diff(want, state()); diff != "" {
		t.Errorf("after the first sync (-want +got):\n%s\noutput:\n%s", diff, out)
	}
	for _, line := range []string{"kept     chatEnds                   " + string(ids[0]), "created  chatStarts",
		"removed  chatEnds                   " + string(ids[1]),
		"removed  chatStarts                 " + string(ids[2]) + " (https://bot.example.com/hooks/comm100/<token>)"} {
		if !strings.Contains(out, line) {
			t.Errorf("output lacks %q:\n%s", line, out)
		}
	}

	// A second sync changes nothing: it only lists.
	before = len(sim.Requests())
	out = sync()
	if diff := cmp.Diff(want, state()); diff != "" {
		t.Errorf("after the second sync (-want +got):\n%s", diff)
	}
	var calls []string
	for _, r := range sim.Requests()[before:] {
		calls = append(calls, r.Method+" "+r.Path)
	}
	// The last call is state()'s own list.
	if diff := cmp.Diff([]string{"GET /v4/livechat/webhooks", "GET /v4/livechat/webhooks"}, calls); diff != "" {
		t.Errorf("second sync made calls beyond the list (-want +got):\n%s", diff)
	}
	if strings.Count(out, "kept") != len(liveChatSubscriptions) {
		t.Errorf("second sync output:\n%s\nwant %d kept lines", out, len(liveChatSubscriptions))
	}
}

// TestPlanWebhooks covers what sync decides, including subscriptions the
// simulator cannot hold (events that are not live-chat subscriptions).
func TestPlanWebhooks(t *testing.T) {
	t.Parallel()
	ep, err := newEndpoint("https://bot.example.com", "comm100", "tok")
	if err != nil {
		t.Fatal(err)
	}
	const target = "https://bot.example.com/hooks/comm100/tok"
	hook := func(id, event, url string) comm100.Webhook {
		return comm100.Webhook{ID: comm100.ID(id), Event: event, TargetURL: url}
	}
	all := func(but ...string) []string {
		var out []string
		for _, e := range liveChatSubscriptions {
			if !slices.Contains(but, e) {
				out = append(out, e)
			}
		}
		return out
	}
	tests := []struct {
		name     string
		existing []comm100.Webhook
		want     webhookPlan
	}{
		{"none yet", nil, webhookPlan{create: all()}},
		{"one kept, its duplicate removed",
			[]comm100.Webhook{hook("1", "chatEnds", target), hook("2", "chatEnds", target)},
			webhookPlan{keep: []comm100.Webhook{hook("1", "chatEnds", target)}, create: all("chatEnds"),
				remove: []comm100.Webhook{hook("2", "chatEnds", target)}}},
		{"an event we do not take is removed",
			[]comm100.Webhook{hook("4", "visitorLeaves", target)},
			webhookPlan{create: all(), remove: []comm100.Webhook{hook("4", "visitorLeaves", target)}}},
		{"an old token and the bare endpoint are ours",
			[]comm100.Webhook{hook("5", "chatStarts", "https://bot.example.com/hooks/comm100/old"), hook("6", "chatEnds", "https://bot.example.com/hooks/comm100")},
			webhookPlan{create: all(), remove: []comm100.Webhook{
				hook("5", "chatStarts", "https://bot.example.com/hooks/comm100/old"), hook("6", "chatEnds", "https://bot.example.com/hooks/comm100")}}},
		{"others' are left alone",
			[]comm100.Webhook{hook("7", "chatEnds", "https://crm.example.com/comm100"), hook("8", "chatEnds", "https://bot.example.com/hooks/comm100-eu")},
			webhookPlan{create: all()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := planWebhooks(tt.existing, ep)
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(webhookPlan{})); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}

func TestComm100WebhooksSyncRefuses(t *testing.T) {
	t.Parallel()
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

// On an external NATS, an unshared budget is each bot's own, named after
// its host: run from another host, sync says its calls are not counted.
func TestComm100WebhooksSyncOnAnExternalNATS(t *testing.T) {
	t.Parallel()
	sim, simArgs := startSim(t, comm100test.Config{})
	base := simArgs[slices.Index(simArgs, "--comm100.base_url")+1]
	site, email, key := sim.Credentials()
	ns := testenv.JetStream(t)
	config := filepath.Join(t.TempDir(), "bot.yaml")
	if err := os.WriteFile(config, []byte("sources:\n  comm100:\n    kind: comm100\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	environ := []string{"BOT_COMM100__BASE_URL=" + base, "BOT_COMM100__SITE_ID=" + site, "BOT_COMM100__EMAIL=" + email,
		"BOT_COMM100__API_KEY=" + key, "BOT_NATS__URL=" + ns.ClientURL()}
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"comm100", "webhooks", "sync", "--public-url", "https://bot.example.com", "--config", config}, environ, &stdout, &stderr); err != nil {
		t.Fatalf("sync: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "which is a bot's only if the bot runs here") {
		t.Errorf("stderr: %s", stderr.String())
	}
}

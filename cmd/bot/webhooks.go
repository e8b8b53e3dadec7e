package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/comm100bot/bot/internal/comm100"
	"github.com/comm100bot/bot/internal/ingest"
)

// liveChatSubscriptions are the live-chat webhook events Comm100 can send
// (COMM100.md §5.1), by their subscription names.
var liveChatSubscriptions = []string{
	"chatIsRequested",
	"chatStarts",
	"chatEnds",
	"chatIsWrappedUp",
	"chatIsTransferred",
	"offlineMessageIsSubmitted",
	"agentStatusChanges",
}

func webhooksSyncCommand() *command {
	return &command{
		name:    "sync",
		args:    "--public-url URL [flags]",
		summary: "register the bot for every Comm100 live-chat event",
		long: `Registers the bot's webhook endpoint (URL/hooks/SOURCE[/TOKEN]) for every
Comm100 live-chat event through Comm100's webhook API. Idempotent: the
subscriptions already there are kept, and stale ones pointing at this bot's
endpoint (another event, a duplicate, an old token) are removed. Needs the
Comm100 credentials of the configuration (--config, BOT_ variables).`,
		run: comm100Cmd,
	}
}

func comm100Cmd(ctx context.Context, c *command, e *cmdEnv, args []string) error {
	stdout := e.stdout
	fs := c.flagSet(e)
	public := fs.String("public-url", "", "the bot's address as Comm100 reaches it, e.g. https://bot.example.com (required)")
	name := fs.String("source", "comm100", "the comm100 source the webhooks post to")
	config := fs.String("config", "", "config file (default bot.yaml if present; BOT_ variables apply)")
	dryRun := fs.Bool("dry-run", false, "print what would change, change nothing")
	if err := c.parse(fs, e, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return c.usageError(e, "unexpected argument %q", fs.Arg(0))
	}
	if *public == "" {
		return c.usageError(e, "--public-url is required")
	}
	cfs := pflag.NewFlagSet("config", pflag.ContinueOnError)
	cfs.String("config", *config, "")
	cfg, err := loadConfig(cfs, e.environ)
	if err != nil {
		return err
	}
	src, ok := cfg.Sources[*name]
	if !ok || src.Kind != ingest.KindComm100 {
		return fmt.Errorf("--source %s: not a configured source of kind comm100", *name)
	}
	if !cfg.Comm100.HasCredentials() {
		return fmt.Errorf("the Comm100 credentials are needed: comm100.site_id, comm100.email, and comm100.api_key or comm100.password + comm100.client_id")
	}
	hc, done, err := budgetedClient(ctx, cfg, e.stderr)
	if err != nil {
		return err
	}
	defer done()
	client, err := comm100.New(cfg.Comm100, hc)
	if err != nil {
		return err
	}
	ep, err := newEndpoint(*public, *name, src.Token.Reveal())
	if err != nil {
		return err
	}
	changes, err := syncWebhooks(ctx, client, ep, *dryRun)
	for _, c := range changes {
		fmt.Fprintln(stdout, c)
	}
	return err
}

// endpoint is where the bot takes the webhooks of one source.
type endpoint struct {
	base   string // <public>/hooks/<source>: every URL of this bot's source starts so
	target string // base[/<token>]: the URL to register
	token  string
}

func newEndpoint(public, source, token string) (endpoint, error) {
	u, err := url.Parse(strings.TrimSuffix(public, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return endpoint{}, fmt.Errorf("--public-url %q: want an absolute http(s) URL", public)
	}
	base := u.JoinPath("hooks", source).String()
	ep := endpoint{base: base, target: base, token: token}
	if token != "" {
		ep.target = base + "/" + url.PathEscape(token)
	}
	return ep, nil
}

// ours reports whether a registered URL points at this bot's source.
func (e endpoint) ours(u string) bool { return u == e.base || strings.HasPrefix(u, e.base+"/") }

// show prints a URL of this source without its token, old or current.
func (e endpoint) show(u string) string {
	if e.ours(u) && u != e.base {
		return e.base + "/<token>"
	}
	return u
}

// webhookAPI is the slice of the Comm100 client that sync needs.
type webhookAPI interface {
	Webhooks(ctx context.Context) ([]comm100.Webhook, error)
	CreateWebhook(ctx context.Context, event, targetURL string) (*comm100.Webhook, error)
	DeleteWebhook(ctx context.Context, id string) error
}

// webhookPlan is what sync does to the subscriptions of one endpoint.
type webhookPlan struct {
	keep   []comm100.Webhook // already right
	create []string          // live-chat events with no subscription of ours
	remove []comm100.Webhook // ours, but another event, a duplicate or an old token
}

// planWebhooks decides how to make the subscriptions of ep exactly one per
// live-chat event; subscriptions pointing elsewhere are left alone.
func planWebhooks(existing []comm100.Webhook, ep endpoint) webhookPlan {
	wanted := map[string]bool{}
	for _, e := range liveChatSubscriptions {
		wanted[e] = true
	}
	var p webhookPlan
	have := map[string]bool{}
	for _, w := range existing {
		if !ep.ours(w.TargetURL) {
			continue
		}
		if w.TargetURL == ep.target && wanted[w.Event] && !have[w.Event] {
			have[w.Event] = true
			p.keep = append(p.keep, w)
			continue
		}
		p.remove = append(p.remove, w)
	}
	for _, e := range liveChatSubscriptions {
		if !have[e] {
			p.create = append(p.create, e)
		}
	}
	return p
}

// syncWebhooks makes the subscriptions of ep exactly one per live-chat event:
// it creates the missing ones first, then removes the stale ones, so that no
// event goes unsubscribed while the token changes. It returns what it did
// (or, with dryRun, would do), one line per change.
func syncWebhooks(ctx context.Context, c webhookAPI, ep endpoint, dryRun bool) ([]string, error) {
	existing, err := c.Webhooks(ctx)
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	plan := planWebhooks(existing, ep)
	var changes []string
	for _, w := range plan.keep {
		changes = append(changes, fmt.Sprintf("kept     %-26s %s", w.Event, w.ID))
	}
	verb := map[bool]string{false: "created", true: "would create"}[dryRun]
	for _, e := range plan.create {
		var id comm100.ID
		if !dryRun {
			created, err := c.CreateWebhook(ctx, e, ep.target)
			if err != nil {
				return changes, fmt.Errorf("create webhook %s: %w", e, err)
			}
			id = created.ID
		}
		changes = append(changes, strings.TrimSpace(fmt.Sprintf("%-8s %-26s %s", verb, e, id)))
	}
	verb = map[bool]string{false: "removed", true: "would remove"}[dryRun]
	for _, w := range plan.remove {
		if !dryRun {
			if err := c.DeleteWebhook(ctx, string(w.ID)); err != nil {
				return changes, fmt.Errorf("remove webhook %s: %w", w.ID, err)
			}
		}
		changes = append(changes, fmt.Sprintf("%-8s %-26s %s (%s)", verb, w.Event, w.ID, ep.show(w.TargetURL)))
	}
	return changes, nil
}

// budgetedClient is an HTTP client whose Comm100 calls take slots of the
// running bot's Comm100 budget, in its NATS, as the bot's own calls do: the
// per-IP limit counts them all. With no bot's NATS to reach, the calls go
// uncounted, and the command says so on warn.
func budgetedClient(ctx context.Context, cfg *Config, warn io.Writer) (*http.Client, func(), error) {
	b, err := connectBus(ctx, cfg)
	if err != nil {
		fmt.Fprintf(warn, "note: these Comm100 calls are not counted in the bot's budget: %v\n", err)
		return nil, func() {}, nil
	}
	bc, err := budgetConfig(cfg, os.Hostname)
	if err != nil {
		b.Close()
		return nil, nil, err
	}
	if !cfg.Comm100.RateLimit.Shared && cfg.NATS.URL != "" {
		// On an external NATS an unshared budget is each bot's own, named
		// after its host: the calls are counted in this host's.
		fmt.Fprintf(warn, "note: on an external NATS each bot's unshared Comm100 budget is named after its host: these calls are counted in this host's, %q, which is a bot's only if the bot runs here (or share the budget: comm100.rate_limit.shared)\n", bc.Name)
	}
	hc, _, err := budgetedHTTPClient(ctx, b.JS, bc, cfg.Comm100.Timeout, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		b.Close()
		return nil, nil, err
	}
	return hc, b.Close, nil
}

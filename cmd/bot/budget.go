package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/comm100bot/bot/internal/actions"
)

// budgetConfig says which budget in NATS the Comm100 limiter keeps to.
//
// A shared budget is named comm100.rate_limit.budget (default: the site id)
// and every replica that names it spends it. An unshared one belongs to one
// bot: on the embedded server, which no other bot uses, it has the same
// name; on an external NATS the host name is added, so that replicas do not
// spend each other's budgets and each finds its own again after a restart.
func budgetConfig(cfg *Config, hostname func() (string, error)) (actions.BudgetConfig, error) {
	rl := cfg.Comm100.RateLimit
	name := rl.Budget
	if name == "" {
		name = cfg.Comm100.SiteID
	}
	if !rl.Shared && cfg.NATS.URL != "" {
		host, err := hostname()
		if err != nil {
			return actions.BudgetConfig{}, fmt.Errorf("comm100.rate_limit: an unshared budget on an external NATS is named after the host: %w", err)
		}
		name += "." + hostKey.ReplaceAllString(host, "_")
	}
	bc := actions.BudgetConfig{
		Name:        name,
		Calls:       rl.Calls,
		Per:         rl.Per,
		CallTimeout: cfg.Comm100.Timeout,
		Replicas:    cfg.NATS.Replicas,
	}
	if err := bc.Validate(); err != nil {
		return bc, fmt.Errorf("comm100.rate_limit.budget: %w", err)
	}
	return bc, nil
}

// hostKey matches what a host name may hold that a budget name may not.
var hostKey = regexp.MustCompile(`[^-_=a-zA-Z0-9]`)

// budgetedHTTPClient is the HTTP client of a Comm100 client whose every
// call first takes a slot of the budget bc in js, as the bot's own calls
// do, and the limiter that hands out the slots. It has no client-wide
// timeout, which would count the wait for the budget: the transport bounds
// each call by timeout from its grant. reg, if set, gets the budget's
// metrics and bot_limiter_wait_seconds.
func budgetedHTTPClient(ctx context.Context, js jetstream.JetStream, bc actions.BudgetConfig, timeout time.Duration,
	log *slog.Logger, reg prometheus.Registerer) (*http.Client, *actions.Limiter, error) {
	budget, err := actions.OpenBudget(ctx, js, bc, log, reg)
	if err != nil {
		return nil, nil, err
	}
	limiter := actions.NewBudgetLimiter(budget)
	var waits prometheus.Histogram
	if reg != nil {
		waits = prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bot_limiter_wait_seconds",
			Help:    "How long Comm100 calls waited for the shared budget.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		})
		if err := reg.Register(waits); err != nil {
			return nil, nil, fmt.Errorf("register limiter metrics: %w", err)
		}
	}
	return &http.Client{Transport: &actions.LimitedTransport{Limiter: limiter, Timeout: timeout, Waits: waits}}, limiter, nil
}

package main

import (
	"fmt"
	"regexp"

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

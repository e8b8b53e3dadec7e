package actions

import (
	"fmt"
	"time"
)

// Config configures the worker pool, under the "dispatch" key.
type Config struct {
	// Workers is how many jobs run at once. Default 4.
	Workers int `koanf:"workers"`
	// MaxAttempts caps the attempts of one job across all deliveries; 0 (the
	// default) keeps trying until RetryFor has passed.
	MaxAttempts int `koanf:"max_attempts"`
	// RetryFor is the retry horizon: a job still failing this long after it
	// was due is given up. Default 24h.
	RetryFor time.Duration `koanf:"retry_for"`
	// RetryInProcess is how long transient failures are retried inside one
	// delivery before the job is handed back to JetStream. Default 10s.
	RetryInProcess time.Duration `koanf:"retry_in_process"`
	// AttemptTimeout bounds one http.request call, from the moment its host's
	// limiter lets it go. Comm100 calls are bounded by comm100.timeout.
	// Default 30s.
	AttemptTimeout time.Duration `koanf:"attempt_timeout"`
	// HTTPRateLimit is the budget of http.request calls per host.
	// Default 60 per 1m.
	HTTPRateLimit struct {
		Calls int           `koanf:"calls"`
		Per   time.Duration `koanf:"per"`
	} `koanf:"http_rate_limit"`
	// RateLimitPause is how long the pool pauses after a rate-limit answer
	// that carries no Retry-After. Default 30s.
	RateLimitPause time.Duration `koanf:"rate_limit_pause"`
	// DryRun logs every job instead of carrying it out.
	DryRun bool `koanf:"dry_run"`

	// CallTimeout bounds one Comm100 call: comm100.timeout, set by the
	// wiring. It sizes the claim on a job that calls Comm100. Default 30s.
	CallTimeout time.Duration `koanf:"-"`

	// Replicas of the buckets and the consumer the pool creates. It is not
	// a key of its own: the wiring sets it from nats.replicas. Default 1.
	Replicas int `koanf:"-"`
}

// Defaults fills the zero fields with their documented defaults.
func (c *Config) Defaults() {
	if c.Workers == 0 {
		c.Workers = 4
	}
	if c.RetryFor == 0 {
		c.RetryFor = 24 * time.Hour
	}
	if c.RetryInProcess == 0 {
		c.RetryInProcess = 10 * time.Second
	}
	if c.AttemptTimeout == 0 {
		c.AttemptTimeout = 30 * time.Second
	}
	if c.HTTPRateLimit.Calls == 0 {
		c.HTTPRateLimit.Calls = 60
	}
	if c.HTTPRateLimit.Per == 0 {
		c.HTTPRateLimit.Per = time.Minute
	}
	if c.RateLimitPause == 0 {
		c.RateLimitPause = 30 * time.Second
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = 30 * time.Second
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
}

// Validate reports the first bad setting.
func (c *Config) Validate() error {
	if c.Workers < 1 {
		return fmt.Errorf("dispatch.workers: want at least 1, got %d", c.Workers)
	}
	if c.MaxAttempts < 0 {
		return fmt.Errorf("dispatch.max_attempts: want 0 (no cap) or more, got %d", c.MaxAttempts)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"dispatch.retry_for", c.RetryFor}, {"dispatch.retry_in_process", c.RetryInProcess},
		{"dispatch.attempt_timeout", c.AttemptTimeout}, {"dispatch.rate_limit_pause", c.RateLimitPause},
		{"dispatch.http_rate_limit.per", c.HTTPRateLimit.Per},
	} {
		if d.v < 0 {
			return fmt.Errorf("%s: want a positive duration, got %s", d.key, d.v)
		}
	}
	if c.HTTPRateLimit.Calls < 0 {
		return fmt.Errorf("dispatch.http_rate_limit.calls: want a positive number, got %d", c.HTTPRateLimit.Calls)
	}
	return nil
}

// Policy returns the decisions of a pool with this configuration. c must
// have its defaults filled.
func (c Config) Policy() Policy {
	return Policy{
		RetryFor:       c.RetryFor,
		MaxAttempts:    c.MaxAttempts,
		RetryInProcess: c.RetryInProcess,
		RateLimitPause: c.RateLimitPause,
		// Retries inside one delivery: 250ms doubling to 4s.
		InProcess: Backoff{Base: 250 * time.Millisecond, Max: 4 * time.Second},
		// Deliveries of a job that keeps failing: 5s doubling to 5m.
		Redelivery: Backoff{Base: 5 * time.Second, Max: 5 * time.Minute},
		// Pauses of the whole pool while Comm100 fails for everyone: 250ms
		// doubling to 15s. The cap bounds the time from "Comm100 answers
		// again" to the probe that finds out, and so to jobs flowing again.
		Outage: Backoff{Base: 250 * time.Millisecond, Max: 15 * time.Second},
	}
}

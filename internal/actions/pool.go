package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/comm100bot/bot/internal/bus"
)

// Config configures the worker pool, under the "dispatch" key.
type Config struct {
	// Workers is how many jobs run at once. Default 4.
	Workers int `koanf:"workers"`
	// MaxAttempts caps the attempts of one job across all deliveries; 0 (the
	// default) keeps trying until RetryFor has passed.
	MaxAttempts int `koanf:"max_attempts"`
	// RetryFor is the retry horizon: a job still failing this long after it
	// was made is given up. Default 24h.
	RetryFor time.Duration `koanf:"retry_for"`
	// RetryInProcess is how long transient failures are retried inside one
	// delivery before the job is handed back to JetStream. Default 10s.
	RetryInProcess time.Duration `koanf:"retry_in_process"`
	// AttemptTimeout bounds one attempt. Default 30s.
	AttemptTimeout time.Duration `koanf:"attempt_timeout"`
	// RateLimitPause is how long the pool pauses after a rate-limit answer
	// that carries no Retry-After. Default 30s.
	RateLimitPause time.Duration `koanf:"rate_limit_pause"`
	// DryRun logs every job instead of carrying it out.
	DryRun bool `koanf:"dry_run"`
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
	if c.RateLimitPause == 0 {
		c.RateLimitPause = 30 * time.Second
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
	return nil
}

// Pool is the one worker pool that carries out every job.
type Pool struct {
	cfg     Config
	js      jetstream.JetStream
	catalog *Catalog
	rt      *Runtime
	limiter *Limiter
	log     *slog.Logger

	jobs     *prometheus.CounterVec
	attempts *prometheus.CounterVec
}

// NewPool returns a pool. limiter may be nil when rt.Comm100 is nil (dry run).
func NewPool(cfg Config, js jetstream.JetStream, catalog *Catalog, rt *Runtime, limiter *Limiter, log *slog.Logger, reg prometheus.Registerer) (*Pool, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Pool{cfg: cfg, js: js, catalog: catalog, rt: rt, limiter: limiter, log: log}
	p.jobs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bot_jobs_total",
		Help: "Jobs finished, by action and outcome (done, dry_run, failed, retry_later).",
	}, []string{"action", "outcome"})
	p.attempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bot_job_attempts_total",
		Help: "Attempts to carry out a job, by action and result (ok, transient, permanent).",
	}, []string{"action", "result"})
	if reg != nil {
		for _, c := range []prometheus.Collector{p.jobs, p.attempts} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register dispatch metrics: %w", err)
			}
		}
	}
	return p, nil
}

// DryRun reports whether Comm100 actions are only logged.
func (p *Pool) DryRun() bool { return p.cfg.DryRun || p.rt.Comm100 == nil }

// Run consumes jobs until ctx is done, then waits for the jobs in hand to
// finish (each bounded by AttemptTimeout) and returns.
func (p *Pool) Run(ctx context.Context) error {
	cons, err := p.js.CreateOrUpdateConsumer(ctx, bus.ActionsStream, jetstream.ConsumerConfig{
		Durable:       bus.WorkerConsumer,
		Description:   "the worker pool",
		FilterSubject: RunSubjectPrefix + ">",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       p.cfg.AttemptTimeout + 30*time.Second,
		MaxDeliver:    -1,
		MaxAckPending: p.cfg.Workers * 4,
	})
	if err != nil {
		return fmt.Errorf("create consumer %s: %w", bus.WorkerConsumer, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(p.cfg.Workers * 2))
	if err != nil {
		return fmt.Errorf("consume %s: %w", bus.WorkerConsumer, err)
	}
	queue := make(chan jetstream.Msg, p.cfg.Workers)
	var wg sync.WaitGroup
	for range p.cfg.Workers {
		wg.Go(func() {
			for msg := range queue {
				p.handle(ctx, msg)
			}
		})
	}
	go func() {
		<-ctx.Done()
		it.Stop()
	}()
	for {
		msg, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
				break
			}
			p.log.Warn("fetching jobs", "err", err)
			continue
		}
		queue <- msg
	}
	close(queue)
	wg.Wait()
	return nil
}

// handle carries out one delivery of a job and finishes the message.
func (p *Pool) handle(ctx context.Context, msg jetstream.Msg) {
	var job Job
	if err := json.Unmarshal(msg.Data(), &job); err != nil {
		p.log.Error("job cannot be decoded; dropped", "subject", msg.Subject(), "err", err)
		_ = msg.Term()
		return
	}
	log := p.log.With(job.logAttrs()...)
	act, ok := p.catalog.Lookup(job.Action)
	if !ok {
		log.Error("job names an unknown action; dropped")
		p.jobs.WithLabelValues(job.Action, "failed").Inc()
		_ = msg.TermWithReason("unknown action")
		return
	}
	if p.cfg.DryRun || job.DryRun || (act.Comm100 && p.rt.Comm100 == nil) {
		log.Info("dry run: action not sent", "params", job.Params)
		p.jobs.WithLabelValues(job.Action, "dry_run").Inc()
		_ = msg.Ack()
		return
	}
	var delivered uint64 = 1
	if meta, err := msg.Metadata(); err == nil {
		delivered = meta.NumDelivered
	}

	res, attempts, err := p.attempt(ctx, log, msg, act, &job)
	switch {
	case err == nil:
		if len(res) > 0 {
			log = log.With("result", map[string]any(res))
		}
		log.Info("action done", "attempts", attempts)
		p.jobs.WithLabelValues(job.Action, "done").Inc()
		_ = msg.Ack()
	case ctx.Err() != nil && (Retryable(err) || errors.Is(err, context.Canceled)):
		// Shutting down: hand the job back at once for another worker or the next start.
		_ = msg.Nak()
	case !Retryable(err):
		log.Error("action failed; not retried", "err", err)
		p.jobs.WithLabelValues(job.Action, "failed").Inc()
		_ = msg.TermWithReason("permanent failure")
	case time.Since(job.Created) > p.cfg.RetryFor ||
		(p.cfg.MaxAttempts > 0 && int(delivered)*attempts >= p.cfg.MaxAttempts):
		log.Error("action failed; retries exhausted", "err", err, "deliveries", delivered)
		p.jobs.WithLabelValues(job.Action, "failed").Inc()
		_ = msg.TermWithReason("retries exhausted")
	default:
		delay := redeliveryDelay(delivered, 5*time.Second, 5*time.Minute)
		log.Warn("action failed; will retry", "err", err, "deliveries", delivered, "retry_in", delay.Round(time.Millisecond))
		p.jobs.WithLabelValues(job.Action, "retry_later").Inc()
		_ = msg.NakWithDelay(delay)
	}
}

// attempt runs the action, retrying transient failures with exponential
// backoff and jitter for up to RetryInProcess. It returns the result, the
// number of attempts made and the last error.
func (p *Pool) attempt(ctx context.Context, log *slog.Logger, msg jetstream.Msg, act *Action, job *Job) (Result, int, error) {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(250*time.Millisecond),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0.5),
		backoff.WithMaxInterval(4*time.Second),
		backoff.WithMaxElapsedTime(p.cfg.RetryInProcess),
	)
	attempts := 0
	var res Result
	op := func() error {
		attempts++
		// In-flight calls finish even during shutdown; only retries stop.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.AttemptTimeout)
		defer cancel()
		actx = WithPriority(actx, priorityRank(job.Priority))
		rt := *p.rt
		rt.Log = log
		var err error
		res, err = act.Run(actx, &rt, Params(job.Params))
		switch {
		case err == nil:
			p.attempts.WithLabelValues(job.Action, "ok").Inc()
			return nil
		case !Retryable(err):
			p.attempts.WithLabelValues(job.Action, "permanent").Inc()
			return backoff.Permanent(err)
		}
		p.attempts.WithLabelValues(job.Action, "transient").Inc()
		if d := rateLimitPause(err, p.cfg.RateLimitPause); d > 0 && p.limiter != nil {
			p.limiter.Pause(time.Now().Add(d))
			log.Warn("Comm100 rate limit hit; pausing all calls", "pause", d)
		}
		return err
	}
	notify := func(err error, next time.Duration) {
		log.Warn("attempt failed; retrying", "err", err, "attempt", attempts, "retry_in", next.Round(time.Millisecond))
		_ = msg.InProgress()
	}
	err := backoff.RetryNotify(op, backoff.WithContext(b, ctx), notify)
	var perm *backoff.PermanentError
	if errors.As(err, &perm) {
		err = perm.Err
	}
	return res, attempts, err
}

package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/comm100"
	"github.com/comm100bot/bot/internal/event"
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
	dlq     *DLQ
	events  EventPublisher

	outage outageBackoff

	stream  jetstream.Stream   // ACTIONS, to delete finished jobs
	done    jetstream.KeyValue // job ids that succeeded
	history jetstream.KeyValue // attempts of jobs that are still failing

	jobs     *prometheus.CounterVec
	attempts *prometheus.CounterVec
	pauses   prometheus.Counter
	record   prometheus.Histogram
}

// EventPublisher publishes follow-up events (event.emit, and the results of
// actions that asked for it).
type EventPublisher interface {
	Publish(ctx context.Context, ev *event.Event) (duplicate bool, err error)
}

// NewPool returns a pool. limiter may be nil when rt.Comm100 is nil (dry run).
func NewPool(cfg Config, js jetstream.JetStream, catalog *Catalog, rt *Runtime, limiter *Limiter, events EventPublisher, log *slog.Logger, reg prometheus.Registerer) (*Pool, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Pool{cfg: cfg, js: js, catalog: catalog, rt: rt, limiter: limiter, log: log, dlq: &DLQ{JS: js}, events: events}
	p.pauses = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "bot_dispatch_pauses_total",
		Help: "Times the whole pool paused after a Comm100 rate-limit answer.",
	})
	p.record = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "bot_job_record_seconds",
		Help:    "Time from a successful action's answer to its record in the jobs_done bucket: the window in which a crash could repeat the action.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14),
	})
	p.jobs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bot_jobs_total",
		Help: "Jobs finished, by action and outcome (done, dry_run, failed, retry_later).",
	}, []string{"action", "outcome"})
	p.attempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bot_job_attempts_total",
		Help: "Attempts to carry out a job, by action and result (ok, transient, permanent).",
	}, []string{"action", "result"})
	if reg != nil {
		gauges := []prometheus.Collector{
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "bot_dlq_jobs", Help: "Jobs in the dead-letter stream.",
			}, countGauge(p.dlq.Size)),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "bot_scheduled_jobs", Help: "Delayed jobs waiting for their time.",
			}, countGauge((&Publisher{JS: js}).Scheduled)),
		}
		if limiter != nil {
			gauges = append(gauges, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "bot_limiter_available", Help: "Comm100 calls that could start now without waiting.",
			}, func() float64 { return float64(limiter.Available()) }))
		}
		for _, c := range append([]prometheus.Collector{p.jobs, p.attempts, p.pauses, p.record}, gauges...) {
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
	var err error
	p.done, err = p.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      bus.DoneBucket,
		Description: "ids of jobs that succeeded, so that a redelivered copy is not carried out twice",
		TTL:         p.cfg.RetryFor + 24*time.Hour,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("create bucket %s: %w", bus.DoneBucket, err)
	}
	p.history, err = p.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      bus.AttemptsBucket,
		Description: "attempts of jobs that are still failing, for the dead-letter story",
		TTL:         p.cfg.RetryFor + time.Hour,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("create bucket %s: %w", bus.AttemptsBucket, err)
	}
	if _, err := p.consumer(ctx); err != nil {
		return err
	}
	p.stream, err = p.js.Stream(ctx, bus.ActionsStream)
	if err != nil {
		return fmt.Errorf("open stream %s: %w", bus.ActionsStream, err)
	}
	var wg sync.WaitGroup
	for range p.cfg.Workers {
		wg.Go(func() { p.work(ctx) })
	}
	wg.Wait()
	return nil
}

// consumer creates or updates the workers' durable consumer. It is called at
// start and again whenever the consumer is found missing.
func (p *Pool) consumer(ctx context.Context) (jetstream.Consumer, error) {
	cons, err := p.js.CreateOrUpdateConsumer(ctx, bus.ActionsStream, jetstream.ConsumerConfig{
		Durable:       bus.WorkerConsumer,
		Description:   "the worker pool",
		FilterSubject: RunSubjectPrefix + ">",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       p.ackWait(),
		MaxDeliver:    -1,
		// Each worker holds at most one job: a job is fetched only when a
		// worker is free, so none waits unwatched past its AckWait.
		MaxAckPending: p.cfg.Workers,
	})
	if err != nil {
		return nil, fmt.Errorf("create consumer %s: %w", bus.WorkerConsumer, err)
	}
	return cons, nil
}

// work is one worker: it fetches a job when it is free, carries it out, and
// returns when ctx is done (after finishing the job in hand).
func (p *Pool) work(ctx context.Context) {
	var cons jetstream.Consumer
	retry := backoff.NewExponentialBackOff(backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(5*time.Second), backoff.WithMaxElapsedTime(0))
	for ctx.Err() == nil {
		var err error
		if cons == nil {
			if cons, err = p.consumer(ctx); err != nil {
				p.log.Warn("worker cannot reach its consumer", "err", err)
				sleepCtx(ctx, retry.NextBackOff())
				continue
			}
		}
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		msg, err := cons.Next(jetstream.FetchContext(fctx))
		cancel()
		switch {
		case err == nil:
			retry.Reset()
			p.handle(ctx, msg)
		case ctx.Err() != nil:
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
			// Nothing to do for now.
		case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound):
			p.log.Warn("workers' consumer is gone; creating it again", "err", err)
			cons = nil
		default:
			p.log.Warn("fetching jobs", "err", err)
			sleepCtx(ctx, retry.NextBackOff())
		}
	}
}

// sleepCtx waits for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// ackWait is how long JetStream waits for word on a delivered job before it
// redelivers it; workers report progress three times in that span.
func (p *Pool) ackWait() time.Duration { return 30 * time.Second }

// keepInProgress reports progress on msg every interval until stop is called.
func keepInProgress(msg jetstream.Msg, interval time.Duration) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// handle carries out one delivery of a job and finishes the message.
func (p *Pool) handle(ctx context.Context, msg jetstream.Msg) {
	// While the job is in hand, waiting for the budget or for a slow call,
	// tell JetStream it is being worked on, so it is not redelivered.
	stopProgress := keepInProgress(msg, p.ackWait()/3)
	defer stopProgress()
	var job Job
	if err := json.Unmarshal(msg.Data(), &job); err != nil {
		p.log.Error("job cannot be decoded; dropped", "subject", msg.Subject(), "err", err)
		p.finish(msg, msg.TermWithReason("undecodable"))
		return
	}
	log := p.log.With(job.logAttrs()...)
	entry, err := p.done.Get(ctx, doneKey(job.ID))
	switch {
	case err == nil:
		log.Info("job already done; not carried out again")
		p.jobs.WithLabelValues(job.Action, "duplicate").Inc()
		// The first run may have stopped between its record and its event.
		var rec struct {
			Result Result    `json:"result"`
			Done   time.Time `json:"done"`
		}
		_ = json.Unmarshal(entry.Value(), &rec)
		p.emit(ctx, log, &job, rec.Result, rec.Done)
		p.finish(msg, msg.Ack())
		return
	case !errors.Is(err, jetstream.ErrKeyNotFound):
		// Not knowing whether it ran is not the same as knowing it did not.
		log.Warn("cannot tell whether the job already ran; will retry", "err", err)
		_ = msg.NakWithDelay(5 * time.Second)
		return
	}
	act, ok := p.catalog.Lookup(job.Action)
	if !ok {
		p.giveUp(ctx, log, msg, &job, "unknown action", fmt.Errorf("unknown action %q", job.Action), nil)
		return
	}
	if p.cfg.DryRun || job.DryRun || (act.Comm100 && p.rt.Comm100 == nil) {
		log.Info("dry run: action not sent", "params", redactParams(job.Params))
		p.jobs.WithLabelValues(job.Action, "dry_run").Inc()
		p.finish(msg, msg.Ack())
		return
	}
	var delivered uint64 = 1
	if meta, err := msg.Metadata(); err == nil {
		delivered = meta.NumDelivered
	}

	history := p.loadHistory(ctx, &job)
	res, tries, err := p.attempt(ctx, log, act, &job, delivered, forbidden(history))
	switch {
	case err == nil:
		p.succeed(ctx, log, msg, &job, res, len(tries))
	case ctx.Err() != nil && (Retryable(err) || errors.Is(err, context.Canceled)):
		// Shutting down: hand the job back at once for the next start.
		_ = msg.Nak()
	case !Retryable(err):
		p.giveUp(ctx, log, msg, &job, "permanent failure", err, append(history, tries...))
	default:
		history = append(history, tries...)
		// The horizon counts from when the job was due, not from when the
		// rule made it: a job delayed by a day still gets its retries.
		due := job.Created
		if job.RunAt.After(due) {
			due = job.RunAt
		}
		total := 0
		for _, a := range history {
			if !a.Time.Before(due) {
				total++
			}
		}
		if time.Since(due) > p.cfg.RetryFor || (p.cfg.MaxAttempts > 0 && total >= p.cfg.MaxAttempts) {
			p.giveUp(ctx, log, msg, &job, "retries exhausted", err, history)
			return
		}
		p.saveHistory(ctx, &job, history)
		delay := redeliveryDelay(delivered, 5*time.Second, 5*time.Minute)
		log.Warn("action failed; will retry", "err", err, "deliveries", delivered, "retry_in", delay.Round(time.Millisecond))
		p.jobs.WithLabelValues(job.Action, "retry_later").Inc()
		_ = msg.NakWithDelay(delay)
	}
}

// succeed records the job as done, emits its result if the rule asked for
// it, and acknowledges it.
func (p *Pool) succeed(ctx context.Context, log *slog.Logger, msg jetstream.Msg, job *Job, res Result, attempts int) {
	// What follows must happen even when shutdown has begun.
	ctx = context.WithoutCancel(ctx)
	start := time.Now()
	rec, _ := json.Marshal(map[string]any{"result": res, "done": start.UTC()})
	// The record is what keeps a redelivered copy from running again: it is
	// written first, and retried a few times before giving up on it.
	var err error
	for try := range 3 {
		if _, err = p.done.Put(ctx, doneKey(job.ID), rec); err == nil {
			break
		}
		sleepCtx(ctx, time.Duration(try+1)*200*time.Millisecond)
	}
	if err != nil {
		log.Warn("job done but not recorded; a redelivery would repeat it", "err", err)
	}
	p.record.Observe(time.Since(start).Seconds())
	if len(res) > 0 {
		log = log.With("result", map[string]any(res))
	}
	log.Info("action done", "attempts", attempts)
	p.jobs.WithLabelValues(job.Action, "done").Inc()
	// Before the ack: the event's id is fixed, so a repeat is dropped, and
	// a crash after the ack cannot lose it.
	p.emit(ctx, log, job, res, start)
	p.finish(msg, msg.Ack())
	_ = p.history.Purge(ctx, doneKey(job.ID))
}

// emit publishes the job's bot.action.completed event if the rule asked for it.
func (p *Pool) emit(ctx context.Context, log *slog.Logger, job *Job, res Result, at time.Time) {
	if !job.Emit || p.events == nil {
		return
	}
	if _, err := p.events.Publish(context.WithoutCancel(ctx), completedEvent(job, res, at)); err != nil {
		log.Warn("action result not emitted", "err", err)
	}
}

// finish removes a job from ACTIONS once it is acknowledged or terminated:
// finished jobs would otherwise stay on disk for good.
func (p *Pool) finish(msg jetstream.Msg, ackErr error) {
	if ackErr != nil || p.stream == nil {
		return
	}
	meta, err := msg.Metadata()
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.stream.DeleteMsg(ctx, meta.Sequence.Stream); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		p.log.Debug("finished job not removed from the stream", "err", err)
	}
}

// giveUp moves the job to the dead-letter stream with its story (every
// attempt of every delivery), then terminates it. If the DLQ cannot take it,
// the job is handed back instead: a job is never dropped silently.
func (p *Pool) giveUp(ctx context.Context, log *slog.Logger, msg jetstream.Msg, job *Job, reason string, err error, attempts []Attempt) {
	dj := &DeadJob{
		Job: *job, Reason: reason, Error: err.Error(),
		Attempts: attempts,
		Failed:   time.Now().UTC(),
	}
	if derr := p.dlq.Put(context.WithoutCancel(ctx), dj); derr != nil {
		log.Error("job failed and the DLQ cannot take it; will retry", "reason", reason, "err", err, "dlq_err", derr)
		_ = msg.NakWithDelay(30 * time.Second)
		return
	}
	log.Error("action failed; moved to the DLQ", "reason", reason, "err", err, "attempts", len(dj.Attempts))
	p.jobs.WithLabelValues(job.Action, "dead").Inc()
	p.finish(msg, msg.TermWithReason(reason))
	_ = p.history.Purge(context.WithoutCancel(ctx), doneKey(job.ID))
}

func (p *Pool) loadHistory(ctx context.Context, job *Job) []Attempt {
	e, err := p.history.Get(ctx, doneKey(job.ID))
	if err != nil {
		return nil
	}
	var h []Attempt
	_ = json.Unmarshal(e.Value(), &h)
	return h
}

func (p *Pool) saveHistory(ctx context.Context, job *Job, h []Attempt) {
	const keep = 50 // the story of a long outage: the first and the latest attempts
	if len(h) > keep {
		h = append(h[:keep/2:keep/2], h[len(h)-keep/2:]...)
	}
	data, _ := json.Marshal(h)
	if _, err := p.history.Put(ctx, doneKey(job.ID), data); err != nil {
		p.log.Debug("attempt history not saved", "job_id", job.ID, "err", err)
	}
}

// countGauge reads a count for a gauge, bounded in time; 0 if it cannot be had.
func countGauge(count func(context.Context) (uint64, error)) func() float64 {
	return func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, err := count(ctx)
		if err != nil {
			return 0
		}
		return float64(n)
	}
}

// forbiddenTries is how many 403 answers that do not speak of a limit a job
// may get before it is given up: Comm100 answers both "permission denied"
// and "limit exceeded" with 403, and a bare 403 may be either.
const forbiddenTries = 3

func forbidden(history []Attempt) int {
	n := 0
	for _, a := range history {
		if a.Status == http.StatusForbidden && !a.RateLimited {
			n++
		}
	}
	return n
}

// sensitive names the params and headers whose values are credentials.
var sensitive = regexp.MustCompile(`(?i)authorization|token|secret|password|api[-_]?key|cookie|signature`)

// redactParams returns params with the values of credential-like keys (at
// any depth, such as http.request headers) replaced by "<redacted>", for
// logs and events. The job itself keeps them: a redrive needs them.
func redactParams(params map[string]any) map[string]any {
	out := make(map[string]any, len(params))
	for k, v := range params {
		switch {
		case sensitive.MatchString(k):
			out[k] = "<redacted>"
		default:
			if m, ok := v.(map[string]any); ok {
				v = redactParams(m)
			}
			out[k] = v
		}
	}
	return out
}

// doneKey turns a job id into a key-value key.
func doneKey(jobID string) string { return hashToken(jobID) }

// completedEvent is the event a finished action emits, so that another rule
// can continue from its result: source "bot", type "action.completed".
func completedEvent(job *Job, res Result, at time.Time) *event.Event {
	if res == nil {
		res = Result{}
	}
	return &event.Event{
		ID:      "action.completed:" + job.ID,
		Source:  "bot",
		Type:    "action.completed",
		Time:    at.UTC(),
		Subject: job.ID,
		Data: map[string]any{
			"rule": job.Rule, "action": job.Action, "job_id": job.ID, "event_id": job.EventID,
			"key": job.Key, "result": map[string]any(res), "params": redactParams(job.Params),
		},
	}
}

// attempt runs the action, retrying transient failures with exponential
// backoff and jitter for up to RetryInProcess. It returns the result, every
// attempt made, and the last error.
//
// forbiddenBefore counts the 403 answers without a limit message of earlier
// deliveries: with them, forbiddenTries such answers end the job.
func (p *Pool) attempt(ctx context.Context, log *slog.Logger, act *Action, job *Job, delivery uint64, forbiddenBefore int) (Result, []Attempt, error) {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(250*time.Millisecond),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0.5),
		backoff.WithMaxInterval(4*time.Second),
		backoff.WithMaxElapsedTime(p.cfg.RetryInProcess),
	)
	var tries []Attempt
	var res Result
	op := func() error {
		// No deadline here: waiting for the budget may take a whole window.
		// Each call is bounded where it is made (LimitedTransport,
		// HTTPCaller), and calls in flight finish even during shutdown.
		actx := WithPriority(ctx, priorityRank(job.Priority))
		rt := *p.rt
		rt.Log = log
		start := time.Now()
		var err error
		params := Params{jobIDParam: job.ID}
		for k, v := range job.Params {
			params[k] = v
		}
		res, err = act.Run(actx, &rt, params)
		tries = append(tries, newAttempt(start, delivery, err))
		switch {
		case err == nil:
			p.attempts.WithLabelValues(job.Action, "ok").Inc()
			p.comm100Answered(act, nil)
			return nil
		case !Retryable(err):
			p.attempts.WithLabelValues(job.Action, "permanent").Inc()
			p.comm100Answered(act, err)
			return backoff.Permanent(err)
		case forbiddenBefore+forbidden(tries) >= forbiddenTries:
			p.attempts.WithLabelValues(job.Action, "permanent").Inc()
			return backoff.Permanent(Permanent(fmt.Errorf("%d answers 403 without a rate-limit message: taken as permission denied: %w", forbiddenTries, err)))
		}
		p.attempts.WithLabelValues(job.Action, "transient").Inc()
		switch d := rateLimitPause(err, p.cfg.RateLimitPause); {
		case p.limiter == nil || !act.Comm100:
		case errors.Is(err, comm100.ErrNotStoredYet): // Comm100 answered: no outage
		case d > 0:
			p.limiter.Pause(time.Now().Add(d))
			p.pauses.Inc()
			log.Warn("Comm100 rate limit hit; pausing all calls", "pause", d)
		default:
			// Comm100 failing for everyone: the whole pool backs off, then
			// sends one call to find out whether it is back.
			d = p.outage.fail()
			p.limiter.PauseAndProbe(time.Now().Add(d))
			p.pauses.Inc()
			log.Debug("Comm100 failing; pausing all calls", "pause", d)
		}
		log.Debug("attempt failed", "err", err, "attempt", len(tries))
		return err
	}
	notify := func(err error, next time.Duration) {
		log.Warn("attempt failed; retrying", "err", err, "attempt", len(tries), "retry_in", next.Round(time.Millisecond))
	}
	err := backoff.RetryNotify(op, backoff.WithContext(b, ctx), notify)
	var perm *backoff.PermanentError
	if errors.As(err, &perm) {
		err = perm.Err
	}
	return res, tries, err
}

// comm100Answered records that Comm100 answered a call (with success or a
// client error): it is up, so any outage backoff ends.
func (p *Pool) comm100Answered(act *Action, err error) {
	var ae *comm100.APIError
	if err != nil && !errors.As(err, &ae) {
		return // a local error says nothing about Comm100
	}
	if act.Comm100 && p.limiter != nil {
		p.outage.ok()
		p.limiter.Resume()
	}
}

func newAttempt(start time.Time, delivery uint64, err error) Attempt {
	a := Attempt{Time: start.UTC(), Delivery: delivery, Duration: time.Since(start)}
	if err != nil {
		a.Error = err.Error()
		var ae *comm100.APIError
		if errors.As(err, &ae) {
			a.Status, a.Code, a.RateLimited = ae.Status, ae.Code, ae.RateLimited()
		}
	}
	return a
}

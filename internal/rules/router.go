package rules

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/comm100bot/bot/internal/actions"
	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/event"
	"github.com/comm100bot/bot/internal/job"
)

// JobPublisher makes jobs durable on the ACTIONS stream.
type JobPublisher interface {
	Publish(ctx context.Context, j *job.Job) error
}

// Router consumes the EVENTS stream, runs every event through the current
// rules, and publishes the resulting jobs. An event is acknowledged only once
// all its jobs are durable; a crash before that redelivers the event, and the
// deterministic job ids absorb the repeats.
type Router struct {
	js      jetstream.JetStream
	current func() *Engine
	jobs    JobPublisher
	log     *slog.Logger
	now     func() time.Time

	events *prometheus.CounterVec
}

// NewRouter returns a router that evaluates events with current().
func NewRouter(js jetstream.JetStream, current func() *Engine, jobs JobPublisher, log *slog.Logger, reg prometheus.Registerer) (*Router, error) {
	r := &Router{js: js, current: current, jobs: jobs, log: log, now: time.Now}
	r.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bot_rules_events_total",
		Help: "Events evaluated by the rules engine, by outcome (matched, unmatched, error, undecodable).",
	}, []string{"outcome"})
	if reg != nil {
		if err := reg.Register(r.events); err != nil {
			return nil, fmt.Errorf("register rules metrics: %w", err)
		}
	}
	return r, nil
}

// Run consumes events until ctx is done. If the consumer goes away (deleted
// by an operator, a stream restored), it is created again.
func (r *Router) Run(ctx context.Context) error {
	retry := backoff.NewExponentialBackOff(backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(5*time.Second), backoff.WithMaxElapsedTime(0))
	for ctx.Err() == nil {
		err := r.consume(ctx)
		if ctx.Err() != nil {
			break
		}
		r.log.Warn("rules consumer stopped; starting it again", "err", err)
		sleep := time.NewTimer(retry.NextBackOff())
		select {
		case <-ctx.Done():
		case <-sleep.C:
		}
		sleep.Stop()
	}
	return nil
}

// consume creates the consumer and reads events until ctx is done or the
// consumer cannot go on.
func (r *Router) consume(ctx context.Context) error {
	cons, err := r.js.CreateOrUpdateConsumer(ctx, bus.EventsStream, jetstream.ConsumerConfig{
		Durable:       bus.RulesConsumer,
		Description:   "the rules engine",
		FilterSubject: bus.EventsSubjects,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxDeliver:    -1,
		MaxAckPending: 256,
	})
	if err != nil {
		return fmt.Errorf("create consumer %s: %w", bus.RulesConsumer, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(64))
	if err != nil {
		return fmt.Errorf("consume %s: %w", bus.RulesConsumer, err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for {
		msg, err := it.Next()
		switch {
		case err == nil:
			r.handle(ctx, msg)
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, jetstream.ErrMsgIteratorClosed), errors.Is(err, jetstream.ErrConsumerDeleted),
			errors.Is(err, jetstream.ErrConsumerNotFound):
			return err
		default:
			r.log.Warn("fetching events", "err", err)
		}
	}
}

func (r *Router) handle(ctx context.Context, msg jetstream.Msg) {
	var ev event.Event
	if err := json.Unmarshal(msg.Data(), &ev); err != nil {
		r.log.Error("event cannot be decoded; dropped", "subject", msg.Subject(), "err", err)
		r.events.WithLabelValues("undecodable").Inc()
		_ = msg.Term()
		return
	}
	log := r.log.With("event_id", ev.ID, "type", ev.Type)
	jobs, errs := r.current().Match(&ev, r.now())
	for _, err := range errs {
		log.Warn("rule could not be evaluated", "err", err)
	}
	for i := range jobs {
		err := r.jobs.Publish(ctx, &jobs[i])
		switch {
		case errors.Is(err, actions.ErrUnencodable):
			// One bad value must not hold back the event's other jobs.
			log.Error("rule produced a job that cannot be stored; skipped", "rule", jobs[i].Rule, "err", err)
			errs = append(errs, err)
			continue
		case err != nil:
			log.Warn("job not stored; the event will be redelivered", "err", err)
			_ = msg.NakWithDelay(time.Second)
			return
		}
		log.Debug("job queued", "job_id", jobs[i].ID, "action", jobs[i].Action, "run_at", jobs[i].RunAt)
	}
	switch {
	case len(errs) > 0:
		r.events.WithLabelValues("error").Inc()
	case len(jobs) > 0:
		r.events.WithLabelValues("matched").Inc()
	default:
		r.events.WithLabelValues("unmatched").Inc()
	}
	if len(jobs) > 0 {
		log.Info("event matched", "jobs", len(jobs))
	}
	_ = msg.Ack()
}

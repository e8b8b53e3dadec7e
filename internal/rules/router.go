package rules

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/comm100bot/bot/internal/actions"
	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/event"
)

// JobPublisher makes jobs durable on the ACTIONS stream.
type JobPublisher interface {
	Publish(ctx context.Context, j *actions.Job) error
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

// Run consumes events until ctx is done.
func (r *Router) Run(ctx context.Context) error {
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
	go func() {
		<-ctx.Done()
		it.Stop()
	}()
	for {
		msg, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
				return nil
			}
			r.log.Warn("fetching events", "err", err)
			continue
		}
		r.handle(ctx, msg)
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
		if err := r.jobs.Publish(ctx, &jobs[i]); err != nil {
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

package rules

import (
	"context"
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
// deterministic job ids absorb the repeats. An event that cannot be decoded,
// or that a rule cannot evaluate, is parked on the DLQ with the rule and the
// error before it is acknowledged.
type Router struct {
	js      jetstream.JetStream
	current func() *Engine
	jobs    JobPublisher
	parking *Parking
	log     *slog.Logger
	now     func() time.Time

	events *prometheus.CounterVec
	parked *prometheus.CounterVec
	// storeWarn keeps "job not stored" to one line per period while the
	// bus cannot store.
	storeWarn throttle
}

// NewRouter returns a router that evaluates events with current().
func NewRouter(js jetstream.JetStream, current func() *Engine, jobs JobPublisher, log *slog.Logger, reg prometheus.Registerer) (*Router, error) {
	r := &Router{js: js, current: current, jobs: jobs, parking: &Parking{JS: js}, log: log, now: time.Now,
		storeWarn: throttle{every: 30 * time.Second}}
	r.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bot_rules_events_total",
		Help: "Events evaluated by the rules engine, by outcome (matched, unmatched, error, undecodable).",
	}, []string{"outcome"})
	r.parked = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bot_rules_parked_total",
		Help: "Events parked on the DLQ, by reason (undecodable, evaluate, unencodable); one per event and failing rule.",
	}, []string{"reason"})
	waiting := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "bot_dlq_events",
		Help: "Parked events waiting in the dead-letter stream.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n, err := r.parking.Size(ctx)
		if err != nil {
			return -1
		}
		return float64(n)
	})
	if reg != nil {
		for _, c := range []prometheus.Collector{r.events, r.parked, waiting} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register rules metrics: %w", err)
			}
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
	ev, err := event.Decode(msg.Data())
	if err != nil {
		log := r.log.With("event_id", storedEventID(msg), "subject", msg.Subject())
		log.Error("event cannot be decoded; parked", "err", err)
		r.events.WithLabelValues("undecodable").Inc()
		r.park(ctx, msg, log, []ParkedEvent{{EventID: storedEventID(msg), Reason: ParkUndecodable, Error: err.Error()}})
		return
	}
	log := r.log.With("event_id", ev.ID, "type", ev.Type)
	jobs, errs := r.current().Match(ev, r.now())
	var failed []ParkedEvent
	for _, err := range errs {
		pe := ParkedEvent{EventID: ev.ID, Reason: ParkEvaluate, Error: err.Error()}
		var ee *EvalError
		if errors.As(err, &ee) {
			pe.Rule, pe.Error = ee.Rule, ee.Err.Error()
		}
		log.Warn("rule could not be evaluated; event parked", "rule", pe.Rule, "err", pe.Error)
		failed = append(failed, pe)
	}
	for i := range jobs {
		err := r.jobs.Publish(ctx, &jobs[i])
		switch {
		case errors.Is(err, actions.ErrUnencodable):
			// One bad value must not hold back the event's other jobs.
			log.Error("rule produced a job that cannot be stored; event parked", "rule", jobs[i].Rule, "err", err)
			failed = append(failed, ParkedEvent{EventID: ev.ID, Rule: jobs[i].Rule, Reason: ParkUnencodable, Error: err.Error()})
			continue
		case err != nil:
			if ok, suppressed := r.storeWarn.allow(r.now()); ok {
				log.Warn("job not stored; the event will be redelivered", "err", err, "similar_warnings_suppressed", suppressed)
			}
			_ = msg.NakWithDelay(redeliveryDelay(msg))
			return
		}
		log.Debug("job queued", "job_id", jobs[i].ID, "action", jobs[i].Action, "run_at", jobs[i].RunAt)
	}
	switch {
	case len(failed) > 0:
		r.events.WithLabelValues("error").Inc()
	case len(jobs) > 0:
		r.events.WithLabelValues("matched").Inc()
	default:
		r.events.WithLabelValues("unmatched").Inc()
	}
	if len(jobs) > 0 {
		log.Info("event matched", "jobs", len(jobs))
	}
	if len(failed) > 0 {
		r.park(ctx, msg, log, failed)
		return
	}
	_ = msg.Ack()
}

// park stores the failures of an event on the DLQ, then acknowledges it.
// If the DLQ cannot take them the event is redelivered instead, and
// evaluated again: it is never acknowledged with a failure unrecorded.
func (r *Router) park(ctx context.Context, msg jetstream.Msg, log *slog.Logger, failed []ParkedEvent) {
	var seq uint64
	if md, err := msg.Metadata(); err == nil {
		seq = md.Sequence.Stream
	}
	for i := range failed {
		pe := &failed[i]
		pe.Subject = msg.Subject()
		pe.Parked = r.now().UTC()
		if err := r.parking.Put(ctx, pe, seq, msg.Data()); err != nil {
			log.Warn("event could not be parked; it will be redelivered", "rule", pe.Rule, "err", err)
			_ = msg.NakWithDelay(redeliveryDelay(msg))
			return
		}
		r.parked.WithLabelValues(pe.Reason).Inc()
	}
	_ = msg.Ack()
}

// storedEventID is the id of a stored event that could not be decoded: the
// message id ingest gave it, or the id a redrive carried along.
func storedEventID(msg jetstream.Msg) string {
	h := msg.Headers()
	if id := h.Get(bus.EventIDHeader); id != "" {
		return id
	}
	return h.Get(jetstream.MsgIDHeader)
}

// redeliveryDelay backs off with the deliveries of an event whose jobs
// could not be stored: 1s, 2s, 4s ... up to 30s, so that a bus that cannot
// store is not asked again for every event every second.
func redeliveryDelay(msg jetstream.Msg) time.Duration {
	n := uint64(1)
	if md, err := msg.Metadata(); err == nil && md.NumDelivered > 0 {
		n = md.NumDelivered
	}
	if n > 6 {
		return 30 * time.Second
	}
	return min(time.Duration(1<<(n-1))*time.Second, 30*time.Second)
}

package rules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/comm100bot/bot/internal/actions"
	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/event"
)

// JobPublisher makes jobs durable on the ACTIONS stream. PublishAsync sends
// a job without waiting: the job is stored once its future says Ok.
type JobPublisher interface {
	PublishAsync(j *actions.Job) (jetstream.PubAckFuture, error)
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

// How many events the router holds at once: fetched, evaluated, their jobs
// on their way to ACTIONS, not yet acknowledged.
const (
	maxEventsInFlight = 1024
	eventsPerPull     = 256
)

// storeTimeout bounds the wait for the PubAcks of one event's jobs; an event
// whose jobs are not all stored by then is handed back for redelivery.
const storeTimeout = 10 * time.Second

// consume creates the consumer and reads events until ctx is done or the
// consumer cannot go on.
//
// Events are pipelined: the loop decodes and evaluates each event and sends
// its jobs with asynchronous publishes, without waiting; a second goroutine
// waits for the PubAcks of each event's jobs, in order, and only then
// acknowledges the event (or hands it back if a job was not stored). So
// hundreds of events share each round trip to the server, and an event is
// still acknowledged only after all its jobs are durable.
func (r *Router) consume(ctx context.Context) error {
	cons, err := r.js.CreateOrUpdateConsumer(ctx, bus.EventsStream, jetstream.ConsumerConfig{
		Durable:       bus.RulesConsumer,
		Description:   "the rules engine",
		FilterSubject: bus.EventsSubjects,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxDeliver:    -1,
		MaxAckPending: maxEventsInFlight,
	})
	if err != nil {
		return fmt.Errorf("create consumer %s: %w", bus.RulesConsumer, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(eventsPerPull))
	if err != nil {
		return fmt.Errorf("consume %s: %w", bus.RulesConsumer, err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()

	inFlight := make(chan *evaluated, maxEventsInFlight)
	var wg sync.WaitGroup
	wg.Go(func() {
		for e := range inFlight {
			r.finish(e)
		}
	})
	// Events already evaluated are finished even when ctx is done: their
	// jobs are on their way, and a redelivery would only repeat them.
	defer wg.Wait()
	defer close(inFlight)
	for {
		msg, err := it.Next()
		switch {
		case err == nil:
			if e := r.handle(ctx, msg); e != nil {
				inFlight <- e
			}
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

// evaluated is an event whose jobs are on their way to ACTIONS.
type evaluated struct {
	msg     jetstream.Msg
	log     *slog.Logger
	jobs    []actions.Job
	futures []jetstream.PubAckFuture
	// failed is set when a job could not even be sent.
	failed error
	// errs counts the rules and jobs that failed for good (the event is
	// acknowledged all the same).
	errs int
}

// handle decodes and evaluates one event and sends its jobs. It returns the
// event to finish once the jobs are stored, or nil if it was finished here.
func (r *Router) handle(_ context.Context, msg jetstream.Msg) *evaluated {
	var ev event.Event
	// Not json.Unmarshal: it would scan the whole event once more to
	// validate it before the event's own one-pass decoder runs.
	if err := ev.UnmarshalJSON(msg.Data()); err != nil {
		r.log.Error("event cannot be decoded; dropped", "subject", msg.Subject(), "err", err)
		r.events.WithLabelValues("undecodable").Inc()
		_ = msg.Term()
		return nil
	}
	log := r.log.With("event_id", ev.ID, "type", ev.Type)
	jobs, errs := r.current().Match(&ev, r.now())
	for _, err := range errs {
		log.Warn("rule could not be evaluated", "err", err)
	}
	e := &evaluated{msg: msg, log: log, jobs: jobs, errs: len(errs)}
	for i := range jobs {
		f, err := r.jobs.PublishAsync(&jobs[i])
		switch {
		case errors.Is(err, actions.ErrUnencodable):
			// One bad value must not hold back the event's other jobs.
			log.Error("rule produced a job that cannot be stored; skipped", "rule", jobs[i].Rule, "err", err)
			e.errs++
			continue
		case err != nil:
			e.failed = err
			return e
		}
		e.futures = append(e.futures, f)
	}
	return e
}

// finish waits until every job of the event is stored, then acknowledges the
// event; if a job was not stored, the event is handed back for redelivery,
// and the job ids absorb the jobs that were.
func (r *Router) finish(e *evaluated) {
	timeout := time.NewTimer(storeTimeout)
	defer timeout.Stop()
	for _, f := range e.futures {
		if e.failed != nil {
			break
		}
		select {
		case <-f.Ok():
		case err := <-f.Err():
			e.failed = err
		case <-timeout.C:
			e.failed = fmt.Errorf("no PubAck within %s", storeTimeout)
		}
	}
	if e.failed != nil {
		e.log.Warn("job not stored; the event will be redelivered", "err", e.failed)
		_ = e.msg.NakWithDelay(time.Second)
		return
	}
	for i := range e.jobs {
		e.log.Debug("job queued", "job_id", e.jobs[i].ID, "action", e.jobs[i].Action, "run_at", e.jobs[i].RunAt)
	}
	switch {
	case e.errs > 0:
		r.events.WithLabelValues("error").Inc()
	case len(e.jobs) > 0:
		r.events.WithLabelValues("matched").Inc()
	default:
		r.events.WithLabelValues("unmatched").Inc()
	}
	if len(e.jobs) > 0 {
		e.log.Debug("event matched", "jobs", len(e.jobs))
	}
	_ = e.msg.Ack()
}

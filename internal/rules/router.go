package rules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/comm100bot/bot/internal/actions"
	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/event"
	"github.com/comm100bot/bot/internal/job"
)

// JobPublisher makes jobs durable on the ACTIONS stream. PublishAsync sends
// a job without waiting: the job is stored once its future says Ok, or
// fails with an error that actions.AlreadyStored accepts.
type JobPublisher interface {
	PublishAsync(j *job.Job) (jetstream.PubAckFuture, error)
}

// Router consumes the EVENTS stream, runs every event through the current
// rules, and publishes the resulting jobs. An event is acknowledged only once
// all its jobs are durable; a crash before that redelivers the event, and the
// deterministic job ids absorb the repeats (actions.Queue). An event that
// cannot be decoded, or that a rule cannot evaluate, is parked on the DLQ
// with the rule and the error before it is acknowledged.
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
	// bus cannot store. Only the goroutine that finishes events uses it.
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
	backlog := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "bot_events_waiting",
		Help: "Events stored and not yet evaluated, or evaluated and not acknowledged (-1 when NATS cannot tell).",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n, err := bus.Waiting(ctx, js, bus.EventsStream, bus.RulesConsumer)
		if err != nil {
			return -1
		}
		return float64(n)
	})
	if reg != nil {
		for _, c := range []prometheus.Collector{r.events, r.parked, waiting, backlog} {
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
// acknowledges the event (or parks its failures first, or hands it back if a
// job was not stored). So hundreds of events share each round trip to the
// server, and an event is still acknowledged only after all its jobs are
// durable.
func (r *Router) consume(ctx context.Context) error {
	cons, err := r.js.CreateOrUpdateConsumer(ctx, bus.EventsStream, jetstream.ConsumerConfig{
		Durable:       bus.RulesConsumer,
		Description:   "the rules engine",
		FilterSubject: bus.EventsSubjects,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       bus.RulesAckWait,
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
	// Events already evaluated are finished even when ctx is done: their
	// jobs are on their way, and a redelivery would only repeat them.
	fctx := context.WithoutCancel(ctx)
	wg.Go(func() {
		for e := range inFlight {
			r.finish(fctx, e)
		}
	})
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
	msg jetstream.Msg
	// eventID and eventType name the event in its log lines; log is made
	// from them when the event first logs (see Router.logger).
	eventID, eventType string
	log                *slog.Logger
	jobs               []job.Job
	futures            []jetstream.PubAckFuture
	// failed are the rules and jobs that failed for good: parked on the DLQ
	// before the event is acknowledged.
	failed []ParkedEvent
	// notStored is set when a job could not be stored: the event is
	// redelivered.
	notStored error
}

// logger is e's logger, made at its first use: most events log nothing,
// and a logger of their own would cost each of them as much as a log line.
func (r *Router) logger(e *evaluated) *slog.Logger {
	if e.log == nil {
		e.log = r.log.With("event_id", e.eventID, "type", e.eventType)
	}
	return e.log
}

// handle decodes and evaluates one event and sends its jobs. It returns the
// event to finish once the jobs are stored, or nil if it was finished here.
func (r *Router) handle(ctx context.Context, msg jetstream.Msg) *evaluated {
	ev, err := event.Decode(msg.Data())
	if err != nil {
		id := bareEventID(msg)
		log := r.log.With("event_id", id, "subject", msg.Subject())
		log.Error("event cannot be decoded; parked", "err", err)
		r.events.WithLabelValues("undecodable").Inc()
		r.park(ctx, msg, log, []ParkedEvent{{EventID: id, Reason: ParkUndecodable, Error: err.Error()}})
		return nil
	}
	now := r.now()
	at, replayedAt := now, false
	if h := msg.Headers().Get(bus.EvaluateAtHeader); h != "" {
		if t, err := time.Parse(time.RFC3339Nano, h); err == nil {
			at, replayedAt = t, true
		}
	}
	jobs, errs := r.current().Match(ev, at)
	// Stored under its key, <source>/<id>, an event's jobs are named after
	// the key, so that two sources' events with one id have jobs of their
	// own. An event stored under its bare id (by a version of the bot
	// before keys) keeps the job ids it had, so that a copy of it does not
	// run its jobs again.
	key := ev.Key()
	keyed := storedEventID(msg) == key
	for i := range jobs {
		if keyed {
			jobs[i].ID = job.ID(key, jobs[i].Rule, jobs[i].Index)
		}
		if replayedAt {
			// Evaluated as at the event's time, made now: a job's retries
			// count from when it was made (dispatch.retry_for).
			jobs[i].Created = now.UTC()
		}
	}
	e := &evaluated{msg: msg, eventID: ev.ID, eventType: ev.Type, jobs: jobs}
	for _, err := range errs {
		pe := ParkedEvent{EventID: ev.ID, Reason: ParkEvaluate, Error: err.Error()}
		var ee *EvalError
		if errors.As(err, &ee) {
			pe.Rule, pe.Error = ee.Rule, ee.Err.Error()
		}
		r.logger(e).Warn("rule could not be evaluated; event parked", "rule", pe.Rule, "err", pe.Error)
		e.failed = append(e.failed, pe)
	}
	for i := range jobs {
		f, err := r.jobs.PublishAsync(&jobs[i])
		switch {
		case errors.Is(err, actions.ErrUnencodable):
			// One bad value must not hold back the event's other jobs.
			r.logger(e).Error("rule produced a job that cannot be stored; event parked", "rule", jobs[i].Rule, "err", err)
			e.failed = append(e.failed, ParkedEvent{EventID: ev.ID, Rule: jobs[i].Rule, Reason: ParkUnencodable, Error: err.Error()})
			continue
		case err != nil:
			e.notStored = err
			return e
		}
		e.futures = append(e.futures, f)
	}
	return e
}

// finish waits until every job of the event is stored, then parks its
// failures, if any, and acknowledges it. A job refused because a copy of it
// is stored counts as stored. If a job was not stored, the event is handed
// back for redelivery, and the jobs that were are refused next time.
func (r *Router) finish(ctx context.Context, e *evaluated) {
	timeout := time.NewTimer(storeTimeout)
	defer timeout.Stop()
	for _, f := range e.futures {
		if e.notStored != nil {
			break
		}
		select {
		case <-f.Ok():
		case err := <-f.Err():
			if !actions.AlreadyStored(err) {
				e.notStored = err
			}
		case <-timeout.C:
			e.notStored = fmt.Errorf("no PubAck within %s", storeTimeout)
		}
	}
	if e.notStored != nil {
		if ok, suppressed := r.storeWarn.allow(r.now()); ok {
			r.logger(e).Warn("job not stored; the event will be redelivered", "err", e.notStored, "similar_warnings_suppressed", suppressed)
		}
		_ = e.msg.NakWithDelay(redeliveryDelay(e.msg))
		return
	}
	// Checked first: the arguments would be boxed for nothing.
	if r.log.Enabled(ctx, slog.LevelDebug) {
		log := r.logger(e)
		for i := range e.jobs {
			log.Debug("job queued", "job_id", e.jobs[i].ID, "action", e.jobs[i].Action, "run_at", e.jobs[i].RunAt)
		}
		if len(e.jobs) > 0 {
			log.Debug("event matched", "jobs", len(e.jobs))
		}
	}
	switch {
	case len(e.failed) > 0:
		r.events.WithLabelValues("error").Inc()
	case len(e.jobs) > 0:
		r.events.WithLabelValues("matched").Inc()
	default:
		r.events.WithLabelValues("unmatched").Inc()
	}
	if len(e.failed) > 0 {
		r.park(ctx, e.msg, r.logger(e), e.failed)
		return
	}
	_ = e.msg.Ack()
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
		pe.StoredID = storedEventID(msg)
		pe.EvaluateAt = msg.Headers().Get(bus.EvaluateAtHeader)
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

// storedEventID is the id an event was stored under: the message id ingest
// gave it (its key, <source>/<id>, or the bare id of an older version), or
// the one a redrive or a replay carried along.
func storedEventID(msg jetstream.Msg) string {
	h := msg.Headers()
	if id := h.Get(bus.EventIDHeader); id != "" {
		return id
	}
	return h.Get(jetstream.MsgIDHeader)
}

// bareEventID is the event id of a stored event that could not be decoded,
// as its stored id gives it: without the "<source>/" of its key (the
// source is in the subject, events.<source>.<type>), as the event ids of
// the events that could be decoded are shown.
func bareEventID(msg jetstream.Msg) string {
	id := storedEventID(msg)
	if source, ok := event.SourceOf(msg.Subject()); ok {
		return strings.TrimPrefix(id, source+"/")
	}
	return id
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

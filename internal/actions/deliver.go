package actions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/comm100"
	"github.com/comm100bot/bot/internal/job"
)

// deliver carries out one delivery of a job and finishes its message: every
// path ends in Ack, Nak, NakWithDelay or Term. The job is held (progress is
// reported on it) until deliver returns.
func (p *Pool) deliver(ctx context.Context, msg jetstream.Msg, jp *job.Job) {
	if ctx.Err() != nil {
		// Fetched as the pool stops: hand it back for the next start.
		p.handBack(msg, "")
		return
	}
	j := *jp
	log := p.log.With(jobAttrs(&j)...)
	if !p.inHand.take(j.ID) {
		// Another worker holds this job and will finish it.
		log.Debug("job already in hand; handed back")
		_ = msg.NakWithDelay(p.ackWait)
		return
	}
	defer p.inHand.release(j.ID)
	delivered := deliveries(msg)

	if p.settled(ctx, log, msg, &j, delivered, nil) {
		return
	}

	act, ok := p.catalog.Lookup(j.Action)
	if !ok {
		p.giveUp(ctx, log, msg, &j, delivered, Decision{Reason: ReasonUnknownAction, Err: fmt.Errorf("unknown action %q", j.Action)}, nil)
		return
	}
	// Rendered {{ templates }} are only known now.
	if err := act.Check(j.Params); err != nil {
		p.giveUp(ctx, log, msg, &j, delivered, Decision{Reason: ReasonInvalidParams, Err: err}, nil)
		return
	}
	if p.cfg.DryRun || j.DryRun || (act.Comm100 && p.rt.Comm100 == nil) {
		p.dryRun(ctx, log, &j)
		p.finish(msg, msg.Ack())
		return
	}
	// Claim the job, so that no other replica runs it beside this worker,
	// then look at the record again: a worker that finished the job may
	// have released its claim after the first look.
	hold, ok := p.claim(ctx, log, msg, &j, act)
	if !ok {
		return
	}
	defer hold.end(ctx)
	if hold != nil && p.settled(ctx, log, msg, &j, delivered, hold) {
		return
	}
	var history []Attempt
	// recorded says whether attempts of earlier deliveries may be in the
	// ledger, to be removed once the job is done: those read, or any when
	// they could not be read.
	recorded := false
	if delivered > 1 {
		// Only a job delivered before has a story to read.
		var err error
		if history, err = p.ledger.Attempts(ctx, j.ID); err != nil {
			log.Debug("attempts of earlier deliveries not read", "err", err)
		}
		recorded = len(history) > 0 || err != nil
	}
	p.attempt(ctx, log, msg, &j, act, delivered, history, recorded, hold)
}

// attempt runs the action until the policy says the delivery is over, and
// carries out its decision.
// settled looks the job up in the ledger and finishes the message when the
// job needs no run here: it is done already (its completion is sent again,
// as the first run may have stopped between its record and its event), or
// whether it ran cannot be told now (handed back for later). It reports
// whether it finished the message.
func (p *Pool) settled(ctx context.Context, log *slog.Logger, msg jetstream.Msg, j *job.Job, delivered uint64, hold *claimHold) bool {
	rec, done, err := p.ledger.Done(ctx, j.ID)
	switch {
	case err != nil && ctx.Err() != nil:
		hold.end(ctx) // before the copy comes back
		p.handBack(msg, j.Action)
	case err != nil:
		// Not knowing whether it ran is not the same as knowing it did not.
		log.Warn("cannot tell whether the job already ran; will retry", "err", err)
		hold.end(ctx)
		_ = msg.NakWithDelay(p.policy.Redelivery.Delay(1))
	case done && rec.Cancelled:
		log.Info("job cancelled by schedule.cancel; not carried out")
		p.metrics.jobs.WithLabelValues(j.Action, "cancelled").Inc()
		p.finish(msg, msg.Ack())
	case done && rec.Dead:
		log.Info("job failed for good earlier (it went to the DLQ); not carried out again")
		p.metrics.jobs.WithLabelValues(j.Action, "duplicate").Inc()
		p.finish(msg, msg.Ack())
	case done:
		log.Info("job already done; not carried out again")
		p.metrics.jobs.WithLabelValues(j.Action, "duplicate").Inc()
		p.complete(ctx, log, msg, j, rec, delivered, delivered > 1)
	default:
		return false
	}
	return true
}

// recordCancelled records in the ledger that schedule.cancel removed the
// delayed job jobID: a copy of it that fires later is acknowledged and not
// carried out.
func (p *Pool) recordCancelled(ctx context.Context, jobID string) error {
	return p.ledger.RecordDone(ctx, jobID, DoneRecord{Done: p.now().UTC(), Cancelled: true})
}

func (p *Pool) attempt(ctx context.Context, log *slog.Logger, msg jetstream.Msg, j *job.Job, act *Action, delivered uint64, history []Attempt, recorded bool, hold *claimHold) {
	params := Params{jobIDParam: j.ID}
	for k, v := range j.Params {
		params[k] = v
	}
	// No deadline here: waiting for the budget may take a whole window.
	// Each call is bounded where it is made (LimitedTransport, HTTPCaller),
	// and calls in flight finish even during shutdown.
	actx := WithPriority(ctx, job.Rank(j.Priority))
	rt := *p.rt
	rt.Log = log
	rt.cancelled = p.recordCancelled
	var started time.Time
	for try := 1; ; try++ {
		start := p.now()
		res, err := act.Run(actx, &rt, params)
		a := newAttempt(start, p.now(), delivered, err)
		if started.IsZero() {
			started = a.Time
		}
		history = append(history, a)
		if err == nil || (comm100Answered(err) && !Retryable(err)) {
			p.comm100Up(act)
		}
		d := p.policy.Decide(Facts{
			Now: p.now(), Due: j.Due(), Delivery: delivered, Started: started, History: history,
			Err: err, Comm100: act.Comm100, Streak: p.outage.streak(j.ID), Stopping: ctx.Err() != nil,
		})
		switch {
		case err == nil:
			p.metrics.attempts.WithLabelValues(j.Action, "ok").Inc()
		case Retryable(d.Err):
			p.metrics.attempts.WithLabelValues(j.Action, "transient").Inc()
		default:
			p.metrics.attempts.WithLabelValues(j.Action, "permanent").Inc()
		}
		p.pause(log, act, j, d.Pause)
		// A job that failed and goes back to JetStream or to the DLQ
		// releases its claim first: a copy delivered at once, to this
		// replica or another, must not find it held and wait out the lease.
		switch d.Verdict {
		case Done:
			p.succeed(ctx, log, msg, j, res, try, delivered, recorded, hold)
			return
		case Retry:
			log.Warn("attempt failed; retrying", "err", err, "attempt", try, "retry_in", d.Delay.Round(time.Millisecond))
			if !bus.Sleep(ctx, d.Delay) {
				hold.end(ctx)
				p.redeliver(ctx, log, msg, j, delivered, Decision{Verdict: Redeliver, Err: err}, history)
				return
			}
		case Redeliver:
			hold.end(ctx)
			p.redeliver(ctx, log, msg, j, delivered, d, history)
			return
		default:
			hold.end(ctx)
			p.giveUp(ctx, log, msg, j, delivered, d, history)
			return
		}
	}
}

// pause carries out a pause that a failure asked for.
func (p *Pool) pause(log *slog.Logger, act *Action, j *job.Job, pz Pause) {
	if pz.For <= 0 {
		return
	}
	until := p.now().Add(pz.For)
	switch {
	case pz.Host != "":
		if p.rt.HTTP != nil {
			p.rt.HTTP.Pause(pz.Host, until)
			log.Warn("host asked for time; pausing its calls", "host", pz.Host, "pause", pz.For.Round(time.Millisecond))
		}
	case !act.Comm100 || p.limiter == nil:
	case pz.Probe:
		p.outage.fail(j.ID)
		p.limiter.PauseAndProbe(until)
		p.metrics.pauses.Inc()
		log.Debug("Comm100 failing; pausing all calls", "pause", pz.For.Round(time.Millisecond))
	default:
		p.limiter.Pause(until)
		p.metrics.pauses.Inc()
		log.Warn("Comm100 rate limit hit; pausing all calls", "pause", pz.For.Round(time.Millisecond))
	}
}

// comm100Up records that Comm100 answered a call of act (with success or a
// client error): it is up, so any outage pause and probing end.
func (p *Pool) comm100Up(act *Action) {
	if act.Comm100 && p.limiter != nil {
		p.outage.ok()
		p.limiter.Resume()
	}
}

// succeed records the job as done, emits its result if the rule asked for
// it, and acknowledges it; recorded says whether attempts of earlier
// deliveries were read from the ledger (see complete).
func (p *Pool) succeed(ctx context.Context, log *slog.Logger, msg jetstream.Msg, j *job.Job, res Result, tries int, delivered uint64, recorded bool, hold *claimHold) {
	start := p.now()
	rec := DoneRecord{Result: res, Done: start.UTC()}
	if err := p.recordDone(ctx, log, j.ID, rec); err != nil {
		// The claim stays until its lease ends: a redelivery waits for it.
		hold.keepToExpire()
		log.Error("job done but not recorded; a redelivery would repeat it", "err", err)
	}
	p.metrics.record.Observe(p.now().Sub(start).Seconds())
	if len(res) > 0 {
		log = log.With("result", redactParams(res))
	}
	log.Info("action done", "attempts", tries)
	p.metrics.jobs.WithLabelValues(j.Action, "done").Inc()
	p.observe(j)
	p.complete(ctx, log, msg, j, rec, delivered, recorded)
}

// recordDone stores the record that keeps a redelivered copy of the job from
// running again. It keeps trying for as long as a redelivery could happen:
// the message stays in hand (its progress reports go on), so JetStream does
// not redeliver it, and a NATS blip of any length repeats nothing. Only a
// stopping pool gives up, after recordGrace.
func (p *Pool) recordDone(ctx context.Context, log *slog.Logger, jobID string, rec DoneRecord) error {
	var stopped time.Time
	for failures := 1; ; failures++ {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.ackWait)
		err := p.ledger.RecordDone(tctx, jobID, rec)
		cancel()
		if err == nil {
			if failures > 1 {
				log.Info("job recorded", "tries", failures)
			}
			return nil
		}
		if failures == 1 {
			log.Warn("job done but not recorded yet; trying until it is", "err", err)
		}
		if ctx.Err() != nil {
			if stopped.IsZero() {
				stopped = p.now()
			}
			if p.now().Sub(stopped) >= p.recordGrace {
				return err
			}
		}
		time.Sleep(p.recordRetry.Delay(failures))
	}
}

// complete emits the job's completion event if the rule asked for it, then
// acknowledges the job and removes it, and its attempts if recorded says
// some may be in the ledger.
func (p *Pool) complete(ctx context.Context, log *slog.Logger, msg jetstream.Msg, j *job.Job, rec DoneRecord, delivered uint64, recorded bool) {
	// Before the ack: the event's id is fixed, so a repeat is dropped, and
	// a crash after the ack cannot lose it.
	if j.Emit && p.rt.Events != nil {
		if _, err := p.rt.Events.Publish(context.WithoutCancel(ctx), completedEvent(j, rec.Result, rec.Done)); err != nil {
			// The record is stored: the copy delivered next emits the event
			// and is acknowledged without running again.
			delay := p.policy.Redelivery.Delay(int(min(delivered, 1<<16)))
			log.Warn("action result not emitted; will retry", "err", err, "retry_in", delay.Round(time.Millisecond))
			_ = msg.NakWithDelay(delay)
			return
		}
	}
	p.finish(msg, msg.Ack())
	if recorded {
		p.forget(ctx, log, j.ID)
	}
}

// forget removes the attempts recorded for a job that is done or dead,
// unless the store's disk is nearly full (see MayRemove: a removal from a
// key-value bucket is a purge): they expire with the bucket's age limit
// then.
func (p *Pool) forget(ctx context.Context, log *slog.Logger, jobID string) {
	if p.MayRemove != nil && !p.MayRemove() {
		return
	}
	if err := p.ledger.Forget(context.WithoutCancel(ctx), jobID); err != nil {
		log.Debug("attempts of a finished job not removed", "err", err)
	}
}

// redeliver hands the job back to JetStream with its story saved.
func (p *Pool) redeliver(ctx context.Context, log *slog.Logger, msg jetstream.Msg, j *job.Job, delivered uint64, d Decision, history []Attempt) {
	if err := p.ledger.SaveAttempts(context.WithoutCancel(ctx), j.ID, history); err != nil {
		log.Debug("attempts not saved", "err", err)
	}
	if d.Delay <= 0 {
		p.handBack(msg, j.Action)
		return
	}
	log.Warn("action failed; will retry", "err", d.Err, "deliveries", delivered, "retry_in", d.Delay.Round(time.Millisecond))
	p.metrics.jobs.WithLabelValues(j.Action, "retry_later").Inc()
	_ = msg.NakWithDelay(d.Delay)
}

// handBack returns a job to JetStream at once, for another worker or the
// next start.
func (p *Pool) handBack(msg jetstream.Msg, action string) {
	_ = msg.Nak()
	if action != "" {
		p.metrics.jobs.WithLabelValues(action, "handed_back").Inc()
	}
}

// giveUp moves the job to the dead-letter stream with its story (every
// attempt of every delivery), then terminates it. If the DLQ cannot take it,
// the job is handed back instead: a job is never dropped silently.
func (p *Pool) giveUp(ctx context.Context, log *slog.Logger, msg jetstream.Msg, j *job.Job, delivered uint64, d Decision, attempts []Attempt) {
	dj := &DeadJob{Job: *j, Reason: d.Reason, Error: d.Err.Error(), Attempts: attempts, Failed: p.now().UTC()}
	if err := p.dlq.Put(context.WithoutCancel(ctx), dj); err != nil {
		log.Error("job failed and the DLQ cannot take it; will retry", "reason", d.Reason, "err", d.Err, "dlq_err", err)
		_ = msg.NakWithDelay(30 * time.Second)
		return
	}
	log.Error("action failed; moved to the DLQ", "reason", d.Reason, "err", d.Err, "attempts", countAttempts(attempts))
	p.metrics.jobs.WithLabelValues(j.Action, "dead").Inc()
	// Before the job leaves the stream: from then on a copy of it is
	// stored, and only the record keeps it from running.
	if err := p.recordDone(ctx, log, j.ID, DoneRecord{Done: p.now().UTC(), Dead: true}); err != nil {
		log.Error("dead job not recorded; a copy of it stored later would run", "err", err)
	}
	p.finish(msg, msg.TermWithReason(d.Reason))
	if delivered > 1 {
		p.forget(ctx, log, j.ID)
	}
}

// jobAttrs are the attributes of every log line about a job.
func jobAttrs(j *job.Job) []any {
	return []any{"job_id", j.ID, "event_id", j.EventID, "rule", j.Rule, "action", j.Action}
}

// dryRun logs a job instead of carrying it out, with attrs (the job's, when
// log does not hold them already).
func (p *Pool) dryRun(ctx context.Context, log *slog.Logger, j *job.Job, attrs ...any) {
	if log.Enabled(ctx, slog.LevelInfo) {
		log.Info("dry run: action not sent", append(attrs, "params", redactParams(j.Params))...)
	}
	p.metrics.jobs.WithLabelValues(j.Action, "dry_run").Inc()
	p.observe(j)
}

// observe hands a finished job to p.Observe.
func (p *Pool) observe(j *job.Job) {
	if p.Observe != nil {
		p.Observe(j)
	}
}

// finish notes that a job is acknowledged or terminated, for the sweeper to
// remove it from ACTIONS: finished jobs would otherwise stay on disk for
// good.
func (p *Pool) finish(msg jetstream.Msg, ackErr error) {
	if ackErr != nil || p.sweeper == nil {
		return
	}
	if meta, err := msg.Metadata(); err == nil {
		p.sweeper.finished(meta.Sequence.Stream)
	}
}

// newAttempt describes one attempt for the job's story.
func newAttempt(start, end time.Time, delivery uint64, err error) Attempt {
	a := Attempt{Time: start.UTC(), Delivery: delivery, Duration: end.Sub(start)}
	if err == nil {
		return a
	}
	a.Error = err.Error()
	var ae *comm100.APIError
	var he *HTTPError
	switch {
	case errors.As(err, &ae):
		a.Status, a.Code, a.RateLimited = ae.Status, ae.Code, ae.RateLimited()
	case errors.As(err, &he):
		a.Status, a.RateLimited = he.Status, he.Status == http.StatusTooManyRequests
	}
	return a
}

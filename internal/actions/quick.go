package actions

import (
	"context"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/comm100bot/bot/internal/idhash"
	"github.com/comm100bot/bot/internal/job"
)

// quick carries out, in the fetcher, as it arrives, a job that needs no
// round trip: a job of a dry run, which is only logged, or a "log" job that
// emits no completion event, unless it was delayed. It reports false,
// leaving the job untouched, for any other job, which goes to a worker.
//
// Such a job skips the ledger: it changes nothing outside the bot, so a
// second run after a crash or a lost ack would only repeat a log line. A
// process still carries it out once: a copy delivered again after its ack
// was lost finds it among the jobs this process finished lately ([recent])
// and is acknowledged without running again.
func (p *Pool) quick(ctx context.Context, msg jetstream.Msg, j *job.Job) bool {
	act, ok := p.catalog.Lookup(j.Action)
	if !ok {
		return false
	}
	dry := p.cfg.DryRun || j.DryRun || (act.Comm100 && p.rt.Comm100 == nil)
	if (!dry && (act.Name != "log" || j.Emit)) || !j.RunAt.IsZero() {
		// A delayed job may have been cancelled: a worker looks it up.
		return false
	}
	if act.Check(j.Params) != nil || !p.inHand.take(j.ID) {
		return false // a worker puts it in the DLQ, or hands it back
	}
	defer p.inHand.release(j.ID)
	if p.recent.has(j.ID) {
		if p.log.Enabled(ctx, slog.LevelDebug) {
			p.log.Debug("job already done; not carried out again", jobAttrs(j)...)
		}
		p.metrics.jobs.WithLabelValues(j.Action, "duplicate").Inc()
		p.finish(msg, msg.Ack())
		return true
	}
	if dry {
		// One line: the job's attributes go into it, not into a logger
		// of its own (which costs as much again).
		p.dryRun(ctx, p.log, j, jobAttrs(j)...)
	} else {
		// A "log" job (the only kind carried out here when not dry): its
		// line, with the job's attributes, is also the record that it was
		// done: no logger of its own, no second line.
		if err := writeLog(ctx, p.log, Params(j.Params), jobAttrs(j)...); err != nil {
			now := p.now()
			p.metrics.attempts.WithLabelValues(j.Action, "permanent").Inc()
			p.giveUp(ctx, p.log.With(jobAttrs(j)...), msg, j, 1, Decision{Reason: ReasonPermanent, Err: err}, []Attempt{newAttempt(now, now, 1, err)})
			return true
		}
		p.metrics.attempts.WithLabelValues(j.Action, "ok").Inc()
		p.metrics.jobs.WithLabelValues(j.Action, "done").Inc()
		p.observe(j)
	}
	p.recent.add(j.ID)
	p.finish(msg, msg.Ack())
	return true
}

// recentJobs is how many finished quick jobs a pool remembers: more than it
// finishes in an AckWait, after which a copy whose ack was lost comes back.
const recentJobs = 1 << 16

// recent is the ids of the last quick jobs the pool finished, each kept as
// 128 bits of hash (package idhash): the map and the ring hold no pointers, so
// the collector never walks them, and no id keeps the decoded job it was cut
// from alive.
type recent struct {
	mu   sync.Mutex
	hash idhash.Hasher
	ids  map[idhash.Sum]struct{}
	ring []idhash.Sum
	next int
	full bool
}

func (r *recent) add(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ids == nil {
		r.hash = idhash.New()
		r.ids = make(map[idhash.Sum]struct{}, recentJobs)
		r.ring = make([]idhash.Sum, recentJobs)
	}
	if r.full {
		delete(r.ids, r.ring[r.next])
	}
	h := r.hash.Of(id)
	r.ring[r.next] = h
	r.ids[h] = struct{}{}
	r.next = (r.next + 1) % len(r.ring)
	r.full = r.full || r.next == 0
}

func (r *recent) has(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ids == nil {
		return false
	}
	_, ok := r.ids[r.hash.Of(id)]
	return ok
}

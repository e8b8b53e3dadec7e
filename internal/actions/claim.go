package actions

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/comm100bot/bot/internal/job"
)

// claimMargin is what a claim's lease adds to one call's timeout by
// default: the time to store the done record through a NATS election, and
// for a renewal or two to fail.
const claimMargin = 15 * time.Second

// newOwner returns the name a pool's claims carry: one per pool, so that
// claims of a process that restarted are another owner's.
func newOwner() string { return rand.Text()[:16] }

// lease is how long a claim on a job of act holds without renewal: one call
// plus the pool's claim margin.
func (p *Pool) lease(act *Action) time.Duration {
	if act.Comm100 {
		return p.cfg.CallTimeout + p.claimMargin
	}
	return p.cfg.AttemptTimeout + p.claimMargin
}

// claimHold is a worker's claim on the job it runs. A goroutine renews it
// until end is called.
type claimHold struct {
	p     *Pool
	log   *slog.Logger
	jobID string
	lease time.Duration

	mu    sync.Mutex
	rev   uint64 // 0 once the claim is lost
	keep  bool   // leave the claim to expire: the done record is not stored
	ended bool   // end was called

	stop chan struct{}
	done chan struct{}
}

// claim takes the job before a worker runs its action, so that no other
// replica runs it at the same time. It returns nil and hands the job back
// when another owner holds a live claim, or when the claim cannot be written
// (not knowing is not owning). A pool whose ledger cannot claim runs without
// a claim: its in-hand set still keeps two of its own workers apart.
func (p *Pool) claim(ctx context.Context, log *slog.Logger, msg jetstream.Msg, j *job.Job, act *Action) (*claimHold, bool) {
	if p.claims == nil {
		return nil, true
	}
	lease := p.lease(act)
	now := p.now()
	// Not cut short by a stop: a claim the server stored after the client
	// gave up would be held by nobody until its lease ends. A claim taken
	// as the pool stops is released before the job is handed back.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.ackWait)
	rev, other, err := p.claims.Claim(cctx, j.ID, p.owner, now, lease)
	cancel()
	switch {
	case err != nil && ctx.Err() != nil:
		p.handBack(msg, j.Action)
		return nil, false
	case err != nil:
		log.Warn("cannot claim the job; will retry", "err", err)
		_ = msg.NakWithDelay(p.policy.Redelivery.Delay(1))
		return nil, false
	case rev == 0:
		// Another replica runs it: come back when its lease ends, by then
		// it is done (and recorded) or its owner is gone.
		delay := min(max(other.Until.Sub(now), time.Second), lease)
		log.Info("job claimed by another worker; handed back", "owner", other.Owner, "retry_in", delay.Round(time.Millisecond))
		p.metrics.jobs.WithLabelValues(j.Action, "claimed").Inc()
		_ = msg.NakWithDelay(delay)
		return nil, false
	}
	c := &claimHold{p: p, log: log, jobID: j.ID, lease: lease, rev: rev, stop: make(chan struct{}), done: make(chan struct{})}
	go c.renew()
	return c, true
}

// renew moves the claim's end forward every quarter of its lease, so that
// a renewal or two may fail (an election) before the lease runs out.
func (c *claimHold) renew() {
	defer close(c.done)
	t := time.NewTicker(c.lease / 4)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		c.mu.Lock()
		rev := c.rev
		c.mu.Unlock()
		if rev == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.p.ackWait)
		next, err := c.p.claims.RenewClaim(ctx, c.jobID, c.p.owner, rev, c.p.now().Add(c.lease))
		cancel()
		c.mu.Lock()
		switch {
		case err == nil:
			c.rev = next
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch):
			c.rev = 0
			c.log.Warn("claim on the job lost: its lease ran out and another worker took it over", "err", err)
		default:
			c.log.Debug("claim not renewed; will try again", "err", err)
		}
		c.mu.Unlock()
	}
}

// keepToExpire leaves the claim in place when the hold ends: the job's done
// record could not be stored, so a redelivery waits for the lease instead
// of running the job at once.
func (c *claimHold) keepToExpire() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.keep = true
	c.mu.Unlock()
}

// end stops the renewals and releases the claim, unless it is kept; a
// second call does nothing. A claim that cannot be released expires with
// its lease; by then the done record, if stored, answers the redeliveries.
func (c *claimHold) end(ctx context.Context) {
	if c == nil {
		return
	}
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	c.ended = true
	c.mu.Unlock()
	close(c.stop)
	<-c.done
	c.mu.Lock()
	rev, keep := c.rev, c.keep
	c.mu.Unlock()
	if rev == 0 || keep {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.p.ackWait)
	defer cancel()
	if err := c.p.claims.ReleaseClaim(rctx, c.jobID, rev); err != nil {
		c.log.Debug("claim not released; it expires with its lease", "err", err)
	}
}

package actions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/job"
)

// Pool is the one worker pool that carries out every job. See the package
// documentation for the flow.
type Pool struct {
	cfg     Config
	policy  Policy
	js      jetstream.JetStream
	catalog *Catalog
	rt      *Runtime
	limiter *Limiter
	log     *slog.Logger
	dlq     *DLQ
	metrics *metrics

	// ledger remembers jobs across deliveries; Run opens the KV ledger
	// unless one is set.
	ledger Ledger
	// now is the clock of the pool's decisions.
	now func() time.Time
	// ackWait is how long JetStream waits for word on a delivered job
	// before it delivers it again; workers report progress three times in
	// that span. Short, so that the jobs of a process that died come back
	// quickly.
	ackWait time.Duration
	// fetchWait bounds one wait for a job: a worker notices a lost consumer
	// and a stop within it.
	fetchWait time.Duration
	// recordRetry spaces the tries to store a done record.
	recordRetry Backoff
	// recordGrace is how long a stopping pool keeps trying to store a done
	// record before it gives up on it.
	recordGrace time.Duration

	outage outage
	inHand inHand
	stream jetstream.Stream // ACTIONS, to delete finished jobs
}

// NewPool returns a pool. limiter may be nil when rt.Comm100 is nil (dry
// run). reg may be nil to leave the metrics unregistered.
func NewPool(cfg Config, js jetstream.JetStream, catalog *Catalog, rt *Runtime, limiter *Limiter, log *slog.Logger, reg prometheus.Registerer) (*Pool, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Pool{
		cfg: cfg, policy: cfg.Policy(), js: js, catalog: catalog, rt: rt, limiter: limiter, log: log,
		dlq:         &DLQ{JS: js},
		now:         time.Now,
		ackWait:     5 * time.Second,
		fetchWait:   time.Second,
		recordRetry: Backoff{Base: 50 * time.Millisecond, Max: 2 * time.Second},
		recordGrace: 10 * time.Second,
	}
	g := gauges{dead: p.dlq.Size, scheduled: (&Queue{JS: js}).Scheduled}
	if limiter != nil {
		g.available = limiter.Available
	}
	var err error
	if p.metrics, err = newMetrics(reg, g); err != nil {
		return nil, err
	}
	return p, nil
}

// DryRun reports whether Comm100 actions are only logged.
func (p *Pool) DryRun() bool { return p.cfg.DryRun || p.rt.Comm100 == nil }

// Run consumes jobs until ctx is done, then finishes or hands back the jobs
// in hand and returns. A call in flight is let finish (each is bounded by
// its timeout): cutting it short after the server did the work would repeat
// it. A job waiting for the budget or for its next retry is handed back at
// once (Nak), so the next start, or another replica, picks it up without
// waiting out its AckWait.
func (p *Pool) Run(ctx context.Context) error {
	if err := p.setup(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped before it started
		}
		return err
	}
	var wg sync.WaitGroup
	for range p.cfg.Workers {
		wg.Go(func() { p.work(ctx) })
	}
	wg.Wait()
	// Acks and naks are sent without waiting for an answer: make sure the
	// last ones are on their way before the caller closes the connection.
	if nc := p.js.Conn(); nc != nil && nc.IsConnected() {
		_ = nc.FlushTimeout(2 * time.Second)
	}
	return nil
}

// setup opens the ledger, the consumer and the stream.
func (p *Pool) setup(ctx context.Context) error {
	if p.ledger == nil {
		l, err := OpenLedger(ctx, p.js, p.cfg.RetryFor, p.cfg.Replicas)
		if err != nil {
			return err
		}
		p.ledger = l
	}
	if _, err := p.consumer(ctx); err != nil {
		return err
	}
	var err error
	if p.stream, err = p.js.Stream(ctx, bus.ActionsStream); err != nil {
		return fmt.Errorf("open stream %s: %w", bus.ActionsStream, err)
	}
	return nil
}

// consumer creates or updates the workers' durable consumer. It is called at
// start and again whenever the consumer is found missing.
func (p *Pool) consumer(ctx context.Context) (jetstream.Consumer, error) {
	cons, err := p.js.CreateOrUpdateConsumer(ctx, bus.ActionsStream, jetstream.ConsumerConfig{
		Durable:       bus.WorkerConsumer,
		Description:   "the worker pool",
		FilterSubject: job.RunSubjectPrefix + ">",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       p.ackWait,
		MaxDeliver:    -1,
		// Each worker holds at most one job: a job is fetched only when a
		// worker is free, so none waits unwatched past its AckWait.
		MaxAckPending: p.cfg.Workers,
		Replicas:      p.cfg.Replicas,
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
	wait := Backoff{Base: 100 * time.Millisecond, Max: 5 * time.Second}
	failures := 0
	for ctx.Err() == nil {
		var err error
		if cons == nil {
			if cons, err = p.consumer(ctx); err != nil {
				failures++
				p.log.Warn("worker cannot reach its consumer", "err", err)
				sleepCtx(ctx, wait.Delay(failures))
				continue
			}
		}
		// The wait is not cut short when the pool stops: a pull request
		// cancelled on the client may still be served by the server, and its
		// job would then sit unwatched until its AckWait. A job that arrives
		// after the stop is handed back.
		msg, err := cons.Next(jetstream.FetchMaxWait(p.fetchWait))
		switch {
		case err == nil:
			failures = 0
			p.deliver(ctx, msg)
		case ctx.Err() != nil:
		case errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
			// Nothing to do for now.
		case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound):
			p.log.Warn("workers' consumer is gone; creating it again", "err", err)
			cons = nil
		default:
			failures++
			p.log.Warn("fetching jobs", "err", err)
			sleepCtx(ctx, wait.Delay(failures))
		}
	}
}

// sleepCtx waits for d or until ctx is done, and reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

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

// inHand is the set of jobs the pool's workers hold. A second delivery of a
// job already in hand (JetStream redelivered it because a progress report
// was late, as across a NATS blip, or the job was published twice) is handed
// back instead of being carried out beside the first.
type inHand struct {
	mu  sync.Mutex
	ids map[string]struct{}
}

// take marks id in hand; false if it already was.
func (h *inHand) take(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.ids[id]; ok {
		return false
	}
	if h.ids == nil {
		h.ids = map[string]struct{}{}
	}
	h.ids[id] = struct{}{}
	return true
}

func (h *inHand) release(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.ids, id)
}

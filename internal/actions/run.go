package actions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
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
	// claims is the ledger when it can claim jobs across replicas (set by
	// setup); owner names this pool's claims.
	claims claimer
	owner  string
	// claimMargin is what a claim's lease adds to one call's timeout.
	claimMargin time.Duration
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

	// sweepEvery spaces the removals of finished jobs from ACTIONS;
	// sweepMost bounds the sequences one removal covers.
	sweepEvery time.Duration
	sweepMost  uint64

	// MayRemove, if set before Run, reports whether finished jobs may be
	// removed from ACTIONS now; nil: always. A removal writes a tombstone
	// for each job it takes out of a block that keeps others, and
	// nats-server 2.15 stops for good when a purge's tombstones are the
	// first write of a stream to fail on a full disk (it waits for a lock
	// it holds), so the wiring has the sweeper wait while the embedded
	// server's disk is nearly full. No job leaves a lane for later while
	// it says no either: its schedule removes itself as it fires.
	MayRemove func() bool

	// Observe, if set before Run, is called with every job the pool has
	// carried out, or only logged in a dry run, just before its ack. It must
	// not block.
	Observe func(j *job.Job)

	outage outage
	inHand inHand
	recent recent
	held   held
	// lanes are the Comm100 jobs' and the other jobs' (see lane).
	lanes [2]*lane
	// parkRoom is how many parked jobs the lane of the other jobs holds
	// without a slot (0: parkInHand).
	parkRoom int
	// leaving counts the jobs being stored again for later (reschedule).
	leaving sync.WaitGroup
	// sweeper removes finished jobs from ACTIONS.
	sweeper *sweeper
}

// comm100Jobs starts the subjects of the jobs that call Comm100.
const comm100Jobs = job.RunSubjectPrefix + job.Comm100ActionPrefix

// lane is one of the pool's two ways through ACTIONS: a durable consumer
// with a fetcher and workers of its own. The Comm100 lane takes the jobs
// that call Comm100 (comm100Jobs); the other lane takes every job and
// passes over those, acknowledging its copy at once. A job waiting for the
// Comm100 budget thus holds a worker and a place in its own lane only: an
// http.request, an event.emit or a schedule.cancel queued behind a thousand
// tickets runs at once.
//
// Within a lane, jobs with a target ([Action.Target]: the host of an
// http.request) take at most all its workers but one (mostTargeted, at
// least one), so that with two workers or more the log, event.emit and
// schedule.cancel jobs always find one; and the jobs of one target at most
// half of those, rounded up (share), so that with three workers or more
// another target finds one too. A job over either bound waits, parked in
// the lane (the first parkInHand of them give their slot back, so that the
// fetcher goes on fetching for the free workers), until a job with a target
// ends; then, of the parked jobs that may start, the most urgent, then the
// first parked, goes next. With 4 workers: one host takes 2, two hosts take
// 2 and 1, and a third host's job waits for the next job with a target to
// end.
//
// When the park room is full, one of the job coming in and the parked jobs
// leaves the lane instead (see lane.leaverLocked): it is stored again in
// ACTIONS as a schedule that fires onto its run subject when its target
// should have room (see [Pool.reschedule] and lane.backAtLocked),
// and the copy in hand is acknowledged once the schedule is stored. A host
// over its dispatch.http_rate_limit, or one that answers slowly, thus holds
// back neither the jobs without a target nor, for long, the other hosts,
// however many jobs it has. While the store's disk is nearly full (no
// removals: a schedule that fires removes itself), the job parks with its
// slot instead, and enough of those fill the lane. (The Comm100 lane has no
// park room and no jobs with a target.)
//
// The other lane's consumer takes every run subject, so that jobs of an
// action it does not know still reach a worker, which puts them in the DLQ.
// It is not the consumer of a pool with one lane (bus.OneLaneConsumer),
// which replicas of such a version still share during a rolling upgrade:
// they purge the jobs up to its ack floor, and a Comm100 job passed over
// there would be purged before this version's Comm100 lane ran it. While
// both versions run, each carries out every job it is given through its
// own consumers, and the ledger and the claims keep a job from running
// twice.
type lane struct {
	consumer string // its durable name
	filter   string // of the subjects it takes
	// skip, if set, is the prefix of the subjects the lane passes over:
	// another lane takes them.
	skip    string
	workers int
	slots   chan struct{} // one per job taken by a worker, waiting for one, or parked with a slot
	freed   chan struct{} // a worker finished a job
	queue   *waiting      // jobs fetched for its workers, not taken yet
	// mostTargeted is how many jobs with a target may be in queue or with
	// a worker at once, share how many of one target.
	mostTargeted, share int

	mu       sync.Mutex
	targeted int            // jobs with a target in queue or with a worker
	busy     map[string]int // target → its jobs in queue or with a worker
	parked   []task         // jobs waiting for their turn, in the order parked
	// parkRoom is how many parked jobs may give up their slot, so that
	// the fetcher goes on fetching; slotless is how many have, or are
	// leaving the lane (see admit).
	parkRoom, slotless int
	// ended holds when the last jobs to a target ended, and back when
	// the last job to it of each priority that left the lane comes back
	// (see backAtLocked); both are forgotten once the target has no job in
	// the lane and none to come back (next, pruneLocked), pruneAt their
	// size at which pruneLocked runs next.
	ended   map[string]*recentEnds
	back    map[string][job.Ranks]time.Time
	pruneAt int
	now     func() time.Time
	// minTurn is the least time between two calls to one target that its
	// budget allows on average (dispatch.http_rate_limit), 0 if unknown.
	minTurn time.Duration
	// counted counts the parked jobs of every lane (bot_jobs_parked).
	counted prometheus.Gauge
}

// newLanes returns the pool's lanes, with workers workers each, room for
// parkRoom parked jobs without a slot in the lane of the other jobs, and the
// clock now; they count the jobs they park in parked.
func newLanes(workers, parkRoom int, parked prometheus.Gauge, now func() time.Time) [2]*lane {
	mk := func(consumer, filter, skip string, parkRoom int) *lane {
		most := max(1, workers-1)
		return &lane{consumer: consumer, filter: filter, skip: skip, workers: workers, mostTargeted: most, share: (most + 1) / 2,
			slots: make(chan struct{}, workers+cheapInHand), freed: make(chan struct{}, 1), queue: newWaiting(),
			counted: parked, parkRoom: parkRoom, now: now}
	}
	return [2]*lane{
		// No Comm100 action has a target.
		mk(bus.Comm100Consumer, comm100Jobs+">", "", 0),
		mk(bus.WorkerConsumer, job.RunSubjectPrefix+">", comm100Jobs, parkRoom),
	}
}

// admit reports whether t may go to the workers now. If jobs with a target
// are at their most, or t's target has its share, t is parked until a job
// with a target ends (see next). If the park room is full and leave (called
// only then, with the lane's lock held; nil is no) says so, one of t and
// the parked jobs leaves the lane instead (see leaverLocked): admit returns
// it, with when it should come back, and it keeps its slot, or its place in
// the park room, until the pool has stored it again and calls left.
func (l *lane) admit(t *task, leave func() bool) (ok bool, out *task) {
	if t.target == "" {
		return true, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fitsLocked(t.target) {
		l.startLocked(t.target)
		return true, nil
	}
	if l.slotless < l.parkRoom {
		// Its slot goes back to the fetcher: jobs for free workers may
		// come in behind it.
		<-l.slots
		t.slotless = true
		l.slotless++
	} else if leave != nil && leave() {
		v := l.leaverLocked(t)
		if v < 0 {
			t.backAt = l.backAtLocked(t)
			return false, t
		}
		o := l.parked[v]
		l.parked = slices.Delete(l.parked, v, v+1)
		// t parks with its slot, and counts ahead of o when they share a
		// target: it is as urgent or more.
		l.parked = append(l.parked, *t)
		o.backAt = l.backAtLocked(&o)
		return false, &o
	}
	l.parked = append(l.parked, *t)
	l.counted.Inc()
	return false, nil
}

// leaverLocked chooses which of t and the parked jobs leaves a full lane:
// the least urgent; of those, one whose target has the most jobs in the
// lane (it waits longest for a place, where a job of another target may
// start at the next end); of those, the one due last (a job coming back
// from later stays, and one due after it leaves); and last, the last to
// come. It returns the parked job's index, or -1 for t.
func (l *lane) leaverLocked(t *task) int {
	lines := make(map[string]int, len(l.busy)+1)
	for target, n := range l.busy {
		lines[target] = n
	}
	for _, q := range l.parked {
		lines[q.target]++
	}
	// before reports whether a should leave rather than b, which came
	// after it: on a full tie, b leaves.
	before := func(a, b *task) bool {
		if ra, rb := job.Rank(a.job.Priority), job.Rank(b.job.Priority); ra != rb {
			return ra > rb
		}
		if la, lb := lines[a.target], lines[b.target]; la != lb {
			return la > lb
		}
		return a.job.Due().After(b.job.Due())
	}
	v, w := -1, t
	for k := len(l.parked) - 1; k >= 0; k-- {
		if q := &l.parked[k]; before(q, w) {
			v, w = k, q
		}
	}
	return v
}

// left is told that t, which admit sent out of the lane, has been stored
// again or handed back: its slot, or its place in the park room, is free.
func (l *lane) left(t task) {
	l.mu.Lock()
	if t.slotless {
		l.slotless--
		l.giveBackLocked()
	} else {
		<-l.slots
	}
	l.mu.Unlock()
	select {
	case l.freed <- struct{}{}:
	default:
	}
}

// leastTurn is the time between two jobs to a target when neither their
// ends nor a budget say more.
const leastTurn = 10 * time.Millisecond

// backAtLocked returns when t, leaving the lane now, should come back:
// after the jobs to its target that the lane holds (none of those parked is
// less urgent: see leaverLocked) and those that left before it as urgent or
// more, one per turn of the target. A turn is the time between two of its
// jobs' ends (see recentEnds.turn), and no less than its budget allows
// (minTurn): a target's jobs leave the lane only while it has all the
// places it may take, so its ends come at its pace.
func (l *lane) backAtLocked(t *task) time.Time {
	now, rank := l.now(), job.Rank(t.job.Priority)
	turn := max(l.minTurn, leastTurn)
	if e := l.ended[t.target]; e != nil {
		if d, ok := e.turn(now, l.busy[t.target] > 0); ok {
			turn = max(d, turn)
		}
	}
	ahead := l.busy[t.target]
	for _, q := range l.parked {
		if q.target == t.target {
			ahead++
		}
	}
	at := now.Add(time.Duration(ahead) * turn)
	chains := l.back[t.target]
	for r := 0; r <= rank; r++ {
		if chains[r].After(at) {
			at = chains[r]
		}
	}
	at = at.Add(turn)
	chains[rank] = at
	if l.back == nil {
		l.back = map[string][job.Ranks]time.Time{}
	}
	l.back[t.target] = chains
	l.maybePruneLocked()
	return at
}

// recentEnds are the times of the last jobs to a target that ended.
type recentEnds struct {
	at      [32]time.Time
	n, next int
}

func (r *recentEnds) add(t time.Time) {
	r.at[r.next] = t
	r.next = (r.next + 1) % len(r.at)
	r.n = min(r.n+1, len(r.at))
}

// turn is the time between two ends: while the target has jobs running,
// from the oldest end kept to now over the ends kept, so that a target
// that stalls has longer turns; else from the oldest to the newest over
// the gaps between them. It is not known from one end without a job
// running.
func (r *recentEnds) turn(now time.Time, running bool) (time.Duration, bool) {
	oldest := r.at[(r.next-r.n+len(r.at))%len(r.at)]
	if running {
		return now.Sub(oldest) / time.Duration(r.n), true
	}
	if r.n < 2 {
		return 0, false
	}
	newest := r.at[(r.next-1+len(r.at))%len(r.at)]
	return newest.Sub(oldest) / time.Duration(r.n-1), true
}

// maybePruneLocked prunes ended and back once they have doubled since the
// last time: next forgets a target whose last job ends, but not one whose
// last jobs left the lane.
func (l *lane) maybePruneLocked() {
	if n := len(l.ended) + len(l.back); n >= l.pruneAt {
		l.pruneLocked()
		l.pruneAt = max(64, 2*(len(l.ended)+len(l.back)))
	}
}

// backLocked reports whether a job to target that left the lane is still
// to come back after now.
func (l *lane) backLocked(target string, now time.Time) bool {
	for _, at := range l.back[target] {
		if at.After(now) {
			return true
		}
	}
	return false
}

// pruneLocked forgets the targets with no job in the lane and none to
// come back.
func (l *lane) pruneLocked() {
	now := l.now()
	keep := make(map[string]bool, len(l.busy))
	for target := range l.busy {
		keep[target] = true
	}
	for _, q := range l.parked {
		keep[q.target] = true
	}
	for target := range l.back {
		if l.backLocked(target, now) {
			keep[target] = true
		}
	}
	for target := range l.ended {
		if !keep[target] {
			delete(l.ended, target)
		}
	}
	for target := range l.back {
		if !keep[target] {
			delete(l.back, target)
		}
	}
}

func (l *lane) fitsLocked(target string) bool {
	return l.targeted < l.mostTargeted && l.busy[target] < l.share
}

func (l *lane) startLocked(target string) {
	if l.busy == nil {
		l.busy = map[string]int{}
	}
	l.busy[target]++
	l.targeted++
}

// endedLocked counts t out of its target's jobs, and notes when it ended.
func (l *lane) endedLocked(t task) {
	if l.busy[t.target]--; l.busy[t.target] <= 0 {
		delete(l.busy, t.target)
	}
	l.targeted--
	if l.ended == nil {
		l.ended = map[string]*recentEnds{}
	}
	e := l.ended[t.target]
	if e == nil {
		e = &recentEnds{}
		l.ended[t.target] = e
	}
	e.add(l.now())
	l.maybePruneLocked()
}

// next is told that a worker is done with t. It returns the parked job that
// takes t's place: of those that may start now, whatever their target, the
// most urgent (job.Rank), then the first parked. No parked job may start
// after any admit or next (one that may is let in), and a job ending frees
// one place, so one job let in is enough; a job is parked only while jobs
// with a target are in queue or with a worker, each of which calls next as
// it ends, so every parked job is reached, in turn.
func (l *lane) next(t task) (task, bool) {
	if t.target == "" {
		return task{}, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.endedLocked(t)
	// The first parked of the most urgent that may start.
	i, same := -1, 0
	for k, q := range l.parked {
		if q.target == t.target {
			same++
		}
		if l.fitsLocked(q.target) && (i < 0 || job.Rank(q.job.Priority) < job.Rank(l.parked[i].job.Priority)) {
			i = k
		}
	}
	if same == 0 && l.busy[t.target] == 0 && !l.backLocked(t.target, l.now()) {
		// Nothing of the target's is left to learn from or to follow.
		delete(l.ended, t.target)
		delete(l.back, t.target)
	}
	if i < 0 {
		return task{}, false
	}
	n := l.parked[i]
	l.parked = slices.Delete(l.parked, i, i+1)
	l.counted.Dec()
	if n.slotless {
		l.slotless--
		l.giveBackLocked()
	}
	l.startLocked(n.target)
	return n, true
}

// giveBackLocked has a parked job that holds a slot give it back, if the
// park room has space for it: else the fetcher would wait for every
// slotless job to be let in before it may fetch again.
func (l *lane) giveBackLocked() {
	if l.slotless >= l.parkRoom {
		return
	}
	for i := range l.parked {
		if !l.parked[i].slotless {
			<-l.slots // its own: never blocks
			l.parked[i].slotless = true
			l.slotless++
			return
		}
	}
}

// done is told that a worker is done with t: it frees t's slot, or hands
// it to the parked job it lets in (see next) if that job gave its own up.
// It returns that job, for the workers.
func (l *lane) done(t task) (task, bool) {
	n, ok := l.next(t)
	switch {
	case t.slotless:
		// Handed to the workers by stop: no slot, and nothing parked.
	case ok && n.slotless:
		n.slotless = false
	default:
		<-l.slots
	}
	return n, ok
}

// stop hands every parked job to the workers, which hand them back at
// once: the lane stops.
func (l *lane) stop() {
	l.mu.Lock()
	parked := l.parked
	l.parked = nil
	for i := range parked {
		l.counted.Dec()
		if parked[i].slotless {
			l.slotless-- // those leaving the lane keep theirs until they have left
		}
		l.startLocked(parked[i].target)
	}
	l.mu.Unlock()
	for _, t := range parked {
		l.queue.push(t)
	}
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
		owner:       newOwner(),
		claimMargin: claimMargin,
		ackWait:     5 * time.Second,
		fetchWait:   time.Second,
		sweepEvery:  time.Second,
		sweepMost:   sweepPurged,
		recordRetry: Backoff{Base: 50 * time.Millisecond, Max: 2 * time.Second},
		recordGrace: 10 * time.Second,
	}
	g := gauges{dead: p.dlq.Size, scheduled: (&Queue{JS: js}).Scheduled,
		waiting: func(ctx context.Context) (uint64, error) { return JobsWaiting(ctx, js) }}
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
	var workers, fetchers, helpers sync.WaitGroup
	bg, stopBg := context.WithCancel(context.WithoutCancel(ctx))
	for _, l := range p.lanes {
		for range l.workers {
			workers.Go(func() {
				for t, ok := l.queue.pop(); ok; t, ok = l.queue.pop() {
					p.deliver(ctx, t.msg, t.job)
					p.held.remove(t.msg)
					if n, ok := l.done(t); ok {
						l.queue.push(n)
					}
					select {
					case l.freed <- struct{}{}:
					default:
					}
				}
			})
		}
		fetchers.Go(func() {
			p.fetch(ctx, l)
			l.stop()
			l.queue.close()
		})
	}
	helpers.Go(func() { p.held.report(bg, p.ackWait/3) })
	helpers.Go(func() { p.sweeper.run(bg, p.log) })
	fetchers.Wait()
	workers.Wait()
	p.leaving.Wait()
	stopBg()
	helpers.Wait()
	// Acks and naks are sent without waiting for an answer: make sure the
	// last ones are on their way before the caller closes the connection,
	// then remove what was finished.
	if nc := p.js.Conn(); nc != nil && nc.IsConnected() {
		_ = nc.FlushTimeout(2 * time.Second)
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		_, _ = p.sweeper.sweep(sctx)
		cancel()
	}
	return nil
}

// cheapInHand is how many jobs beyond one per worker a lane fetches at
// once: the size of a batch of cheap jobs. parkInHand is how many parked
// jobs the lane of the other jobs holds beyond those (see lane.admit).
const (
	cheapInHand = 256
	parkInHand  = 1024
)

// JobsWaiting returns how many jobs the pool's consumers have still to
// finish: not delivered yet, or delivered and not acknowledged. A Comm100
// job counts twice until the other lane, which is given every job, has
// passed over it; zero is exact.
func JobsWaiting(ctx context.Context, js jetstream.JetStream) (uint64, error) {
	var n uint64
	for _, name := range bus.PoolConsumers {
		w, err := bus.Waiting(ctx, js, bus.ActionsStream, name)
		if err != nil {
			return 0, err
		}
		n += w
	}
	return n, nil
}

// task is a job handed to a worker.
type task struct {
	msg    jetstream.Msg
	job    *job.Job
	target string // see [Action.Target]
	// slotless is set while it holds none of its lane's slots: parked
	// when the lane's park room had space (see lane.admit).
	slotless bool
	// backAt is when it should come back if it leaves the lane (see
	// lane.admit).
	backAt time.Time
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
	p.claims, _ = p.ledger.(claimer)
	// The sweeper reads the last job of a lane: a replica that lags could
	// miss one just stored (see sweeper.floor).
	stream, err := streamReadByLeader(ctx, p.js, bus.ActionsStream)
	if err != nil {
		return err
	}
	if p.parkRoom == 0 {
		p.parkRoom = parkInHand
	}
	p.lanes = newLanes(p.cfg.Workers, p.parkRoom, p.metrics.parked, p.now)
	if p.rt != nil && p.rt.HTTP != nil {
		p.lanes[1].minTurn = p.rt.HTTP.interval()
	}
	for _, l := range p.lanes {
		if _, err := p.consumer(ctx, l); err != nil {
			return err
		}
	}
	p.sweeper = &sweeper{stream: stream, js: p.js, lanes: p.lanes, every: p.sweepEvery, most: p.sweepMost, mayRemove: p.MayRemove}
	return nil
}

// consumer creates or updates the durable consumer of lane l. It is called
// at start and again whenever the consumer is found missing.
func (p *Pool) consumer(ctx context.Context, l *lane) (jetstream.Consumer, error) {
	cons, err := p.js.CreateOrUpdateConsumer(ctx, bus.ActionsStream, jetstream.ConsumerConfig{
		Durable:       l.consumer,
		Description:   "the worker pool: jobs on " + l.filter,
		FilterSubject: l.filter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       p.ackWait,
		MaxDeliver:    -1,
		// No limit: the pool fetches only what it has room for, and reports
		// progress on every job it holds, so none waits unwatched past its
		// AckWait. A limit would count the jobs handed back to wait out a
		// delay (NakWithDelay), which JetStream keeps pending on the
		// consumer, and every replica's jobs: a host that fails, or replicas
		// whose park rooms share it, would stop the lane's other jobs.
		MaxAckPending: -1,
		Replicas:      p.cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("create consumer %s: %w", l.consumer, err)
	}
	return cons, nil
}

// fetch pulls the jobs of lane l in batches sized to the room it has, until
// ctx is done. A cheap job is carried out as it arrives; any other job takes
// a slot and goes to the lane's workers. While jobs wait for a worker, it
// fetches no more than the workers can take, so jobs that wait for the
// Comm100 budget stay in JetStream rather than in the pool.
func (p *Pool) fetch(ctx context.Context, l *lane) {
	var cons jetstream.Consumer
	wait := Backoff{Base: 100 * time.Millisecond, Max: 5 * time.Second}
	failures := 0
	fail := func(err error) {
		failures++
		p.log.Warn("fetching jobs", "err", err)
		bus.Sleep(ctx, wait.Delay(failures))
	}
	for ctx.Err() == nil {
		var err error
		if cons == nil {
			if cons, err = p.consumer(ctx, l); err != nil {
				failures++
				p.log.Warn("pool cannot reach its consumer", "err", err)
				bus.Sleep(ctx, wait.Delay(failures))
				continue
			}
		}
		n := cap(l.slots) - len(l.slots)
		if waiting := l.queue.len(); waiting > 0 {
			n = min(n, l.workers-waiting)
		}
		if n <= 0 {
			// Every worker is busy and jobs wait for them.
			select {
			case <-ctx.Done():
			case <-l.freed:
			}
			continue
		}
		// The wait is not cut short when the pool stops: a pull request
		// cancelled on the client may still be served by the server, and its
		// jobs would then sit unwatched until their AckWait. Jobs that arrive
		// after the stop are handed back.
		batch, err := cons.Fetch(n, jetstream.FetchMaxWait(p.fetchWait))
		if err == nil {
			for msg := range batch.Messages() {
				p.take(ctx, msg, l)
			}
			err = batch.Error()
		}
		switch {
		case err == nil:
			failures = 0
		case ctx.Err() != nil:
		case errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded), errors.Is(err, jetstream.ErrNoMessages):
			// Nothing to do for now.
		case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound):
			p.log.Warn("workers' consumer is gone; creating it again", "consumer", l.consumer, "err", err)
			cons = nil
		default:
			fail(err)
		}
	}
}

// undecodable moves a stored job that cannot be decoded to the DLQ, as it
// was stored, then terminates it; if the DLQ cannot take it, it is handed
// back: a job is never dropped silently.
func (p *Pool) undecodable(ctx context.Context, msg jetstream.Msg, err error) {
	log := p.log.With("subject", msg.Subject())
	stored := msg.Data()
	if len(stored) > maxStoredText {
		stored = stored[:maxStoredText]
	}
	dj := &DeadJob{Job: job.Job{ID: msg.Headers().Get(jetstream.MsgIDHeader)}, Reason: ReasonUndecodable, Error: err.Error(),
		Failed: p.now().UTC(), Stored: strings.ToValidUTF8(string(stored), "\uFFFD"), StoredSubject: msg.Subject()}
	if dj.Job.ID == "" {
		dj.Job.ID = "undecodable/" + msg.Subject()
	}
	if perr := p.dlq.Put(context.WithoutCancel(ctx), dj); perr != nil {
		log.Error("job cannot be decoded and the DLQ cannot take it; will retry", "err", err, "dlq_err", perr)
		_ = msg.NakWithDelay(30 * time.Second)
		return
	}
	log.Error("job cannot be decoded; moved to the DLQ", "err", err)
	p.metrics.jobs.WithLabelValues(ReasonUndecodable, "dead").Inc()
	p.finish(msg, msg.TermWithReason(ReasonUndecodable))
}

// take decodes a job fetched by lane l and carries it out at once if it is
// cheap, or hands it to one of l's workers.
func (p *Pool) take(ctx context.Context, msg jetstream.Msg, l *lane) {
	if l.skip != "" && strings.HasPrefix(msg.Subject(), l.skip) {
		// Another lane's: that lane carries it out (or moves it to the
		// DLQ), and the sweeper removes it once both have acknowledged it.
		_ = msg.Ack()
		return
	}
	j, err := job.Decode(msg.Data())
	if err != nil {
		p.undecodable(ctx, msg, err)
		return
	}
	if ctx.Err() != nil {
		// Fetched as the pool stops: hand it back for the next start, or
		// another replica. Not at once: the pull still open would take it
		// again, over and over, until the pull ends; and not before it
		// ends, or the job would come back to this pull, which no one
		// reads any more, and wait out its AckWait.
		_ = msg.NakWithDelay(2 * p.fetchWait)
		p.metrics.jobs.WithLabelValues(j.Action, "handed_back").Inc()
		return
	}
	if p.quick(ctx, msg, j) {
		return
	}
	l.slots <- struct{}{} // never blocks: fetched no more than the free slots
	p.held.add(msg)
	t := task{msg: msg, job: j}
	if act, ok := p.catalog.Lookup(j.Action); ok && act.Target != nil {
		t.target = act.Target(Params(j.Params))
	}
	// A schedule that fires removes itself: not while removals must wait.
	ok, out := l.admit(&t, p.mayLeave)
	if ok {
		l.queue.push(t)
	}
	if out != nil {
		p.reschedule(l, *out)
	}
}

// mayLeave reports whether a job may leave a full lane now (see
// lane.admit): its schedule removes itself as it fires, so not while
// removals must wait.
func (p *Pool) mayLeave() bool { return p.MayRemove == nil || p.MayRemove() }

// held is the set of jobs that are parked, wait for a worker or are in a
// worker's hands. One goroutine reports progress on all of them (see report).
type held struct {
	mu   sync.Mutex
	msgs map[jetstream.Msg]struct{}
}

func (h *held) add(msg jetstream.Msg) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.msgs == nil {
		h.msgs = map[jetstream.Msg]struct{}{}
	}
	h.msgs[msg] = struct{}{}
}

func (h *held) remove(msg jetstream.Msg) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.msgs, msg)
}

// report tells JetStream, every interval until ctx is done, that each job
// held is being worked on, so that none is redelivered while it waits for a
// worker, for the budget, for a retry, for a slow call or for its record.
func (h *held) report(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var msgs []jetstream.Msg
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h.mu.Lock()
		msgs = msgs[:0]
		for m := range h.msgs {
			msgs = append(msgs, m)
		}
		h.mu.Unlock()
		for _, m := range msgs {
			_ = m.InProgress()
		}
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

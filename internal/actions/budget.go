package actions

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/comm100bot/bot/internal/bus"
)

// BudgetBucket is the key-value bucket that holds the Comm100 budgets, one
// key per budget name.
const BudgetBucket = "comm100_budget"

// ErrBudgetUnavailable is returned (wrapped with the cause) by a limiter on
// a [Budget] when the budget in NATS cannot be read or written: no call is
// made, since a call that the other replicas cannot see could break the
// budget.
var ErrBudgetUnavailable = errors.New("the Comm100 budget in NATS cannot be reached; no call made")

// errBudgetConflict: the budget changed since it was read; read it again.
var errBudgetConflict = errors.New("the budget changed since it was read")

// Timings of the budget's operations on NATS.
const (
	// budgetOpTimeout bounds one read or write.
	budgetOpTimeout = 2 * time.Second
	// budgetFailAfter is how long a take keeps trying to reach NATS (a
	// leader election takes a few seconds) before it gives up: fail closed.
	budgetFailAfter = 10 * time.Second
	// budgetReleaseFor bounds the write that marks a call ended. If it
	// fails, the call counts until its lease runs out instead.
	budgetReleaseFor = 3 * time.Second
	// budgetLeaseSlack is added to the lease of a call, for the time
	// between the grant and the start of the call's own timeout.
	budgetLeaseSlack = 2 * time.Second
	// budgetClockAllowance is taken off an age measured between two time
	// stamps of the NATS servers, in case they come from servers whose
	// clocks differ (a new stream leader).
	budgetClockAllowance = time.Second
)

// BudgetConfig configures a [Budget].
type BudgetConfig struct {
	// Name of the budget: processes that name the same budget share it. A
	// key of the bucket: letters, digits, '-', '_', '=', and '.' between them.
	Name string
	// Calls allowed in any window of Per.
	Calls int
	Per   time.Duration
	// CallTimeout bounds one call from its grant (comm100.timeout). A call
	// whose process dies before it says the call ended counts until its
	// lease runs out: the time of its grant, CallTimeout and a little more.
	CallTimeout time.Duration
	// Replicas of the bucket (nats.replicas).
	Replicas int
}

var budgetName = regexp.MustCompile(`^[-_=a-zA-Z0-9]+(\.[-_=a-zA-Z0-9]+)*$`)

// Validate reports a bad setting.
func (c BudgetConfig) Validate() error {
	if !budgetName.MatchString(c.Name) {
		return fmt.Errorf("budget name %q: want letters, digits, '-', '_' or '=' (and '.' between them)", c.Name)
	}
	if c.Calls < 1 || c.Per <= 0 || c.CallTimeout <= 0 {
		return fmt.Errorf("budget %s: want positive calls, window and call timeout, got %d per %s, timeout %s", c.Name, c.Calls, c.Per, c.CallTimeout)
	}
	return nil
}

// Budget is the book of a [Limiter] kept in NATS: the calls of the last
// window, as one entry of the [BudgetBucket] bucket that every process
// naming the budget reads and replaces by compare-and-swap. It survives
// restarts, and replicas that share it share one exact budget.
//
// The stored log lists the calls that may still count: each with an id,
// whether it ended, and its lease (how long after it was stored the call can
// still reach Comm100). A process takes a slot by writing the log with its
// call added, only if the log is unchanged since it read it and it holds
// fewer than Calls calls that still count; it marks the call ended by
// writing the log again once the answer came. Writes are serialized by
// JetStream (the expected last sequence of the key), so every take sees all
// the takes before it.
//
// Why no window of Per holds more than Calls calls, whatever the latency:
// let b be the last to be taken of Calls+1 calls that reached Comm100 inside
// one window, and a any other of them. a was taken before b, so it is in the
// log b's taker read. a reached Comm100 before its end, and less than Per
// before b did, and b reached it after it was taken: so a's end plus Per was
// still ahead when b was taken, and b's taker, which counts a until it is
// sure that time has passed, counted Calls calls and could not take b.
//
// Being sure needs no shared clock. Each process measures with its own
// clock from the moment it first saw a call's state in the log, which is no
// earlier than the moment the state was stored: an ended call counts until
// Per after that; one still running until its lease and Per after that, so
// the slots of a process that died holding them free themselves. A
// process's own calls count from their real grant and end. A process that
// first sees a call long after it was stored (after a restart) may count it
// from the time stamps that the NATS servers put on the log instead, less a
// clock allowance: a restarted bot does not wait a whole window for calls
// that ended long ago. When a write's answer is lost (a leader election),
// its call is not made; the next read finds it and removes it.
//
// When NATS cannot be reached for a while, no call is made: the take fails
// with [ErrBudgetUnavailable], says so in the log and in
// bot_limiter_budget_unreachable_total.
type Budget struct {
	cfg   BudgetConfig
	lease time.Duration
	poll  time.Duration
	store budgetStore
	owner string // this process's prefix of call ids
	log   *slog.Logger

	unreachable prometheus.Counter
	conflicts   prometheus.Counter
	avail       atomic.Int64

	// lock is held by one operation on the store at a time, and guards
	// what follows. A channel, so that waiting for it can be abandoned.
	lock    chan struct{}
	loaded  bool // the view below is the stored log at rev
	touched bool // a fresh server time stamp was had once
	rev     uint64
	stamp   time.Time // server time of rev; zero when rev is this process's own write
	entries []budgetEntry
	seen    map[string]*sighting
	calls   uint64 // ids given
	down    bool   // the last take could not reach the store
	warned  bool   // a different budget setting in the log was reported
}

// budgetLog is the stored value, in a line-based text form that is quick
// to read and write and that an operator can read (nats kv get):
//
//	budget v1 calls=300 per_ms=300000
//	<call id> running|ended <lease in ms> <server time stamp in Unix ns, or ->
//	...
type budgetLog struct {
	Calls   int   // the budget of the last writer
	PerMS   int64 // its window
	Entries []budgetEntry
}

// budgetEntry is one call that may still count.
type budgetEntry struct {
	ID string
	// Done: the call ended before this state was stored.
	Done bool
	// LeaseMS: a running call reaches Comm100 no later than this long after
	// it was stored.
	LeaseMS int64
	// At is the server time stamp of the write that stored this state, or
	// later; zero means the stamp of the log itself, or earlier.
	At time.Time
}

func (l *budgetLog) encode() []byte {
	b := make([]byte, 0, 48+len(l.Entries)*48)
	b = append(b, "budget v1 calls="...)
	b = strconv.AppendInt(b, int64(l.Calls), 10)
	b = append(b, " per_ms="...)
	b = strconv.AppendInt(b, l.PerMS, 10)
	for _, e := range l.Entries {
		b = append(b, '\n')
		b = append(b, e.ID...)
		if e.Done {
			b = append(b, " ended "...)
		} else {
			b = append(b, " running "...)
		}
		b = strconv.AppendInt(b, e.LeaseMS, 10)
		if e.At.IsZero() {
			b = append(b, " -"...)
		} else {
			b = append(b, ' ')
			b = strconv.AppendInt(b, e.At.UnixNano(), 10)
		}
	}
	return b
}

var errBudgetFormat = errors.New("not a budget log this version understands")

func (l *budgetLog) decode(data []byte) error {
	lines := strings.Split(string(data), "\n")
	if _, err := fmt.Sscanf(lines[0], "budget v1 calls=%d per_ms=%d", &l.Calls, &l.PerMS); err != nil {
		return fmt.Errorf("%w: %q", errBudgetFormat, lines[0])
	}
	l.Entries = make([]budgetEntry, 0, len(lines)-1)
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) != 4 || (f[1] != "running" && f[1] != "ended") {
			return fmt.Errorf("%w: %q", errBudgetFormat, line)
		}
		e := budgetEntry{ID: f[0], Done: f[1] == "ended"}
		var err error
		if e.LeaseMS, err = strconv.ParseInt(f[2], 10, 64); err != nil {
			return fmt.Errorf("%w: %q", errBudgetFormat, line)
		}
		if f[3] != "-" {
			ns, err := strconv.ParseInt(f[3], 10, 64)
			if err != nil {
				return fmt.Errorf("%w: %q", errBudgetFormat, line)
			}
			e.At = time.Unix(0, ns)
		}
		l.Entries = append(l.Entries, e)
	}
	return nil
}

// sighting is what this process knows of a call in the log.
type sighting struct {
	done bool
	// last is the latest local time at which the call can reach Comm100: its
	// end if it ended, else the end of its lease. It counts until last+Per.
	last   time.Time
	mine   bool
	held   bool // mine and running
	orphan bool // mine, from a write whose answer was lost: no call was made
}

// budgetStore keeps one value with a revision.
type budgetStore interface {
	// load returns the value, its revision and the server's time stamp of
	// it; revision 0 when there is none.
	load(ctx context.Context) (value []byte, rev uint64, stamp time.Time, err error)
	// swap stores value if the revision is still rev (0: none yet) and
	// returns the new one; errBudgetConflict if it is not.
	swap(ctx context.Context, value []byte, rev uint64) (uint64, error)
}

// OpenBudget creates the bucket if needed and returns the budget.
// reg may be nil.
func OpenBudget(ctx context.Context, js jetstream.JetStream, cfg BudgetConfig, log *slog.Logger, reg prometheus.Registerer) (*Budget, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      BudgetBucket,
		Description: "Comm100 calls of the last window, one key per budget, shared by the replicas that name it",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("create bucket %s: %w", BudgetBucket, err)
	}
	return newBudget(cfg, &kvBudgetStore{kv: kv, key: cfg.Name}, log, reg)
}

func newBudget(cfg BudgetConfig, store budgetStore, log *slog.Logger, reg prometheus.Registerer) (*Budget, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var id [6]byte
	_, _ = crand.Read(id[:])
	b := &Budget{
		cfg:   cfg,
		lease: budgetOpTimeout + cfg.CallTimeout + budgetLeaseSlack,
		poll:  min(max(cfg.Per/50, 20*time.Millisecond), time.Second),
		store: store,
		owner: hex.EncodeToString(id[:]),
		log:   log.With("budget", cfg.Name),
		seen:  map[string]*sighting{},
		lock:  make(chan struct{}, 1),
		unreachable: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bot_limiter_budget_unreachable_total",
			Help: "Comm100 calls not made because the budget in NATS could not be reached (fail closed).",
		}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bot_limiter_budget_conflicts_total",
			Help: "Writes of the budget in NATS that found it changed by another process, and read it again.",
		}),
	}
	b.avail.Store(int64(cfg.Calls))
	if reg != nil {
		for _, c := range []prometheus.Collector{b.unreachable, b.conflicts} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register budget metrics: %w", err)
			}
		}
	}
	return b, nil
}

// take implements book.
func (b *Budget) take(ctx context.Context) (func(), time.Duration, error) {
	select {
	case b.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
	defer func() { <-b.lock }()
	giveUp := time.Now().Add(budgetFailAfter)
	retry := backoff.NewExponentialBackOff(backoff.WithInitialInterval(50*time.Millisecond),
		backoff.WithMaxInterval(time.Second), backoff.WithMaxElapsedTime(0))
	// failed waits before the next try, or says why to give up.
	failed := func(err error) error {
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case time.Now().After(giveUp):
			b.unreachable.Inc()
			if !b.down {
				b.down = true
				b.log.Warn("Comm100 budget in NATS cannot be reached; no call is made until it can", "err", err)
			}
			return fmt.Errorf("%w: %w", ErrBudgetUnavailable, err)
		}
		b.log.Debug("Comm100 budget in NATS not reached; trying again", "err", err)
		bus.Sleep(ctx, retry.NextBackOff())
		return nil
	}
	for {
		if err := b.syncLocked(ctx); err != nil {
			if err := failed(err); err != nil {
				return nil, 0, err
			}
			continue
		}
		now := time.Now()
		if n, next := b.liveLocked(now); n >= b.cfg.Calls {
			// Read again next time: other processes may have ended calls.
			b.loaded = false
			return nil, min(next.Sub(now), b.poll), nil
		}
		b.calls++
		id := b.owner + "-" + strconv.FormatUint(b.calls, 36)
		entries := append(b.composeLocked(now), budgetEntry{ID: id, LeaseMS: b.lease.Milliseconds()})
		start := time.Now()
		err := b.writeLocked(ctx, entries)
		switch {
		case err == nil:
			b.seen[id] = &sighting{mine: true, held: true, last: start.Add(b.lease)}
			if b.down {
				b.down = false
				b.log.Info("Comm100 budget in NATS reachable again")
			}
			return func() { b.release(id) }, 0, nil
		case errors.Is(err, errBudgetConflict):
			// Another process wrote first; read again. A read served by a
			// replica of the bucket that lags behind conflicts again: give
			// it a moment.
			b.conflicts.Inc()
			if time.Now().After(giveUp) {
				return nil, 0, failed(err)
			}
			bus.Sleep(ctx, rand.N(10*time.Millisecond))
		default:
			// The write may have been stored: the call is not made, and the
			// next read removes it.
			if err := failed(err); err != nil {
				return nil, 0, err
			}
		}
	}
}

// release marks the call id ended, and tells the other processes. If the
// write fails, they count the call until its lease runs out.
func (b *Budget) release(id string) {
	b.lock <- struct{}{}
	defer func() { <-b.lock }()
	s := b.seen[id]
	if s == nil {
		return
	}
	s.held, s.done = false, true
	if now := time.Now(); now.Before(s.last) {
		s.last = now
	}
	ctx, cancel := context.WithTimeout(context.Background(), budgetReleaseFor)
	defer cancel()
	for ctx.Err() == nil {
		if err := b.syncLocked(ctx); err != nil {
			b.log.Debug("end of a Comm100 call not recorded in NATS; it counts until its lease runs out", "err", err)
			return
		}
		if i := b.indexLocked(id); i < 0 || b.entries[i].Done {
			return
		}
		err := b.writeLocked(ctx, b.composeLocked(time.Now()))
		if err == nil || !errors.Is(err, errBudgetConflict) {
			return
		}
		b.conflicts.Inc()
	}
}

// available implements book: the calls that could start now, as far as
// this process knows.
func (b *Budget) available() int {
	select {
	case b.lock <- struct{}{}:
	default:
		return int(b.avail.Load())
	}
	defer func() { <-b.lock }()
	n, _ := b.liveLocked(time.Now())
	a := max(b.cfg.Calls-n, 0)
	b.avail.Store(int64(a))
	return a
}

// syncLocked reads the log unless the view is already the stored one.
func (b *Budget) syncLocked(ctx context.Context) error {
	if b.loaded {
		return nil
	}
	if !b.touched {
		// The log may have been written long ago (the bot was down): write
		// it back unchanged first, for a fresh server time stamp to measure
		// the age of its calls against.
		l, rev, stamp, _, err := b.readLocked(ctx)
		if err != nil {
			return err
		}
		if rev != 0 {
			for i := range l.Entries {
				if l.Entries[i].At.IsZero() {
					l.Entries[i].At = stamp
				}
			}
			b.rev = rev
			if err := b.writeLocked(ctx, l.Entries); err != nil && !errors.Is(err, errBudgetConflict) {
				return err
			}
		}
		b.touched = true
	}
	l, rev, stamp, read, err := b.readLocked(ctx)
	if err != nil {
		return err
	}
	b.absorbLocked(l.Entries, rev, stamp, read)
	return nil
}

// readLocked reads the stored log, and returns it with its revision, the
// server's time stamp of it, and the local time it was read at.
func (b *Budget) readLocked(ctx context.Context) (budgetLog, uint64, time.Time, time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, budgetOpTimeout)
	defer cancel()
	var l budgetLog
	value, rev, stamp, err := b.store.load(ctx)
	if err != nil {
		return l, 0, stamp, time.Time{}, fmt.Errorf("read budget %s: %w", b.cfg.Name, err)
	}
	read := time.Now()
	if rev == 0 {
		return l, 0, stamp, read, nil
	}
	if rev == b.rev && b.touched {
		// Unchanged since this process last read or wrote it.
		l.Entries = b.entries
		return l, rev, stamp, read, nil
	}
	if err := l.decode(value); err != nil {
		return l, 0, stamp, read, fmt.Errorf("read budget %s (revision %d): %w", b.cfg.Name, rev, err)
	}
	if !b.warned && (l.Calls != b.cfg.Calls || l.PerMS != b.cfg.Per.Milliseconds()) {
		b.warned = true
		b.log.Warn("another process keeps this budget with other settings; every process that shares a budget should give it the same calls and per",
			"their_calls", l.Calls, "their_per", time.Duration(l.PerMS)*time.Millisecond, "calls", b.cfg.Calls, "per", b.cfg.Per)
	}
	return l, rev, stamp, read, nil
}

// absorbLocked takes in the log at rev, read at local time read.
func (b *Budget) absorbLocked(entries []budgetEntry, rev uint64, stamp, read time.Time) {
	b.rev, b.stamp, b.entries, b.loaded = rev, stamp, entries, true
	present := make(map[string]bool, len(entries))
	for _, e := range entries {
		present[e.ID] = true
		// The state was stored before this read; the servers' stamps may
		// tell how long before.
		stored := read
		at := e.At
		if at.IsZero() {
			at = stamp
		}
		if age := stamp.Sub(at) - budgetClockAllowance; age > 0 {
			stored = read.Add(-age)
		}
		s := b.seen[e.ID]
		switch {
		case s == nil && strings.HasPrefix(e.ID, b.owner+"-"):
			b.seen[e.ID] = &sighting{mine: true, orphan: true}
		case s == nil:
			s = &sighting{done: e.Done, last: stored}
			if !e.Done {
				s.last = stored.Add(b.leaseOf(e))
			}
			b.seen[e.ID] = s
		case s.mine:
			// This process knows its own calls better.
		case e.Done && !s.done:
			s.done = true
			if stored.Before(s.last) {
				s.last = stored
			}
		}
	}
	// Forget the calls no longer in the log, except this process's own
	// while they count: a read from a replica of the bucket that lags
	// behind may miss them, and a later read must not take them for
	// writes whose answer was lost.
	for id, s := range b.seen {
		if !present[id] && (!s.mine || !read.Before(s.last.Add(b.cfg.Per))) && !s.held {
			delete(b.seen, id)
		}
	}
}

func (b *Budget) leaseOf(e budgetEntry) time.Duration {
	if e.LeaseMS > 0 {
		return time.Duration(e.LeaseMS) * time.Millisecond
	}
	return b.lease
}

// liveLocked counts the calls of the log that still count at now, and says
// when the first of them stops counting.
func (b *Budget) liveLocked(now time.Time) (n int, next time.Time) {
	for _, e := range b.entries {
		s := b.seen[e.ID]
		if s == nil || s.orphan {
			continue
		}
		if free := s.last.Add(b.cfg.Per); now.Before(free) {
			n++
			if next.IsZero() || free.Before(next) {
				next = free
			}
		}
	}
	return n, next
}

// composeLocked returns the log to write at now: the calls that still
// count, with what this process knows of its own.
func (b *Budget) composeLocked(now time.Time) []budgetEntry {
	out := make([]budgetEntry, 0, len(b.entries)+1)
	for _, e := range b.entries {
		s := b.seen[e.ID]
		if s == nil || s.orphan || !now.Before(s.last.Add(b.cfg.Per)) {
			continue
		}
		ne := budgetEntry{ID: e.ID, Done: e.Done || s.done, LeaseMS: e.LeaseMS}
		if ne.Done == e.Done {
			ne.At = e.At
			if ne.At.IsZero() {
				ne.At = b.stamp // stays zero when the view is this process's own write
			}
		}
		out = append(out, ne)
	}
	return out
}

func (b *Budget) indexLocked(id string) int {
	for i, e := range b.entries {
		if e.ID == id {
			return i
		}
	}
	return -1
}

// writeLocked stores entries if the log is still at the revision read.
func (b *Budget) writeLocked(ctx context.Context, entries []budgetEntry) error {
	value := (&budgetLog{Calls: b.cfg.Calls, PerMS: b.cfg.Per.Milliseconds(), Entries: entries}).encode()
	ctx, cancel := context.WithTimeout(ctx, budgetOpTimeout)
	defer cancel()
	rev, err := b.store.swap(ctx, value, b.rev)
	if err != nil {
		b.loaded = false
		return fmt.Errorf("write budget %s: %w", b.cfg.Name, err)
	}
	b.rev, b.stamp, b.entries, b.loaded = rev, time.Time{}, entries, true
	return nil
}

// kvBudgetStore keeps a budget under its name in the budget bucket.
type kvBudgetStore struct {
	kv  jetstream.KeyValue
	key string
}

func (s *kvBudgetStore) load(ctx context.Context) ([]byte, uint64, time.Time, error) {
	e, err := s.kv.Get(ctx, s.key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, time.Time{}, nil
	}
	if err != nil {
		return nil, 0, time.Time{}, err
	}
	return e.Value(), e.Revision(), e.Created(), nil
}

func (s *kvBudgetStore) swap(ctx context.Context, value []byte, rev uint64) (uint64, error) {
	var n uint64
	var err error
	if rev == 0 {
		n, err = s.kv.Create(ctx, s.key, value)
	} else {
		n, err = s.kv.Update(ctx, s.key, value, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, fmt.Errorf("%w: %w", errBudgetConflict, err)
	}
	return n, err
}

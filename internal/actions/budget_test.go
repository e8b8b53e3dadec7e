package actions

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// memStore is a budget store in memory that behaves as NATS may: every read
// and write takes a random time each way, a write's answer may be lost
// (whether or not it was stored), and the store may be down for a while.
// Its time stamps come from a clock that may run ahead of the processes'.
type memStore struct {
	maxLatency time.Duration
	loseAnswer float64       // share of writes whose answer is lost
	skew       time.Duration // the server clock runs this far ahead

	mu    sync.Mutex
	rng   *rand.Rand
	value []byte
	rev   uint64
	stamp time.Time
	down  bool
}

func newMemStore(seed uint64, maxLatency time.Duration) *memStore {
	return &memStore{maxLatency: maxLatency, rng: rand.New(rand.NewPCG(seed, 7))}
}

var errStoreDown = errors.New("nats: no responders available for request")

func (s *memStore) latency() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Duration(s.rng.Int64N(int64(s.maxLatency) + 1))
}

func (s *memStore) setDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

func (s *memStore) load(ctx context.Context) ([]byte, uint64, time.Time, error) {
	if err := sleepOrDone(ctx, s.latency()); err != nil {
		return nil, 0, time.Time{}, err
	}
	s.mu.Lock()
	value, rev, stamp, down := s.value, s.rev, s.stamp, s.down
	s.mu.Unlock()
	if down {
		return nil, 0, time.Time{}, errStoreDown
	}
	if err := sleepOrDone(ctx, s.latency()); err != nil {
		return nil, 0, time.Time{}, err
	}
	return value, rev, stamp, nil
}

func (s *memStore) swap(ctx context.Context, value []byte, rev uint64) (uint64, error) {
	if err := sleepOrDone(ctx, s.latency()); err != nil {
		return 0, err
	}
	s.mu.Lock()
	if s.down {
		s.mu.Unlock()
		return 0, errStoreDown
	}
	if rev != s.rev {
		s.mu.Unlock()
		return 0, errBudgetConflict
	}
	s.rev++
	s.value, s.stamp = value, time.Now().Add(s.skew)
	n := s.rev
	lost := s.rng.Float64() < s.loseAnswer
	s.mu.Unlock()
	if err := sleepOrDone(ctx, s.latency()); err != nil {
		return 0, err
	}
	if lost {
		return 0, context.DeadlineExceeded
	}
	return n, nil
}

func sleepOrDone(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testBudget(t *testing.T, store budgetStore, calls int, per, callTimeout time.Duration) *Budget {
	t.Helper()
	b, err := newBudget(BudgetConfig{Name: "10000", Calls: calls, Per: per, CallTimeout: callTimeout}, store, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// replica is one process calling through its own limiter on a shared budget.
// Cancelling its context kills it: calls in flight reach the server, but
// their end is never recorded.
type replica struct {
	l      *Limiter
	cancel context.CancelFunc
}

// callLog collects the calls that reached the server, from all replicas.
type callLog struct {
	mu    sync.Mutex
	calls []grant
}

func (c *callLog) add(g grant) {
	c.mu.Lock()
	c.calls = append(c.calls, g)
	c.mu.Unlock()
}

// runReplica starts workers that call through l with random latency up to
// maxLatency until ctx is done; a call reaches the server somewhere between
// its grant and its end.
func runReplica(ctx context.Context, wg *sync.WaitGroup, l *Limiter, workers int, seed uint64, maxLatency time.Duration, log *callLog) {
	for w := range workers {
		rng := rand.New(rand.NewPCG(seed, uint64(w)))
		wg.Go(func() {
			for ctx.Err() == nil {
				release, err := l.Acquire(ctx, rng.IntN(3))
				if err != nil {
					if ctx.Err() == nil {
						// Failed closed: try again a little later, as the pool would.
						_ = sleepOrDone(ctx, time.Second)
					}
					continue
				}
				start := time.Now()
				lat := time.Duration(rng.Int64N(int64(maxLatency) + 1))
				arrive := time.Duration(rng.Float64() * float64(lat))
				time.Sleep(arrive)
				log.add(grant{start: start, arrive: time.Now()})
				time.Sleep(lat - arrive)
				if ctx.Err() != nil {
					return // died before it could record the end
				}
				release()
			}
		})
	}
}

// TestBudgetSharedByReplicasNeverExceedsIt runs several replicas on one
// budget, with random store and call latencies, lost answers, replicas that
// die holding slots and new ones that take their place, and an outage of
// the store after which a new leader's clock stamps the log: no window of
// per ever holds more than the budget.
func TestBudgetSharedByReplicasNeverExceedsIt(t *testing.T) {
	tests := []struct {
		name         string
		calls        int
		per          time.Duration
		replicas     int
		workers      int
		storeLatency time.Duration
		callLatency  time.Duration
		loseAnswer   float64
		skew         time.Duration // of the clock of the leader elected after the outage
		windows      int
	}{
		{"comm100 default", 300, 5 * time.Minute, 3, 4, 20 * time.Millisecond, 500 * time.Millisecond, 0.02, 0, 6},
		{"small budget, slow store", 20, 5 * time.Second, 3, 8, 300 * time.Millisecond, time.Second, 0.1, 0, 12},
		{"one call per window", 1, 2 * time.Second, 2, 3, 50 * time.Millisecond, 200 * time.Millisecond, 0.05, 0, 12},
		{"new leader's clock ahead, within the allowance", 10, 3 * time.Second, 3, 4, 50 * time.Millisecond, 2 * time.Second, 0.05, budgetClockAllowance * 9 / 10, 12},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := newMemStore(uint64(i), tt.storeLatency)
				store.loseAnswer = tt.loseAnswer
				callTimeout := 2 * tt.callLatency
				var calls callLog
				var wg sync.WaitGroup
				start := func(seed uint64) *replica {
					ctx, cancel := context.WithCancel(t.Context())
					l := NewBudgetLimiter(testBudget(t, store, tt.calls, tt.per, callTimeout))
					runReplica(ctx, &wg, l, tt.workers, seed, tt.callLatency, &calls)
					return &replica{l: l, cancel: cancel}
				}
				var reps []*replica
				for r := range tt.replicas {
					reps = append(reps, start(uint64(r)))
				}
				run := time.Duration(tt.windows) * tt.per
				step := run / 6
				time.Sleep(step)
				reps[0].cancel() // dies holding slots
				time.Sleep(step)
				reps = append(reps, start(100)) // takes its place
				store.setDown(true)             // NATS away
				time.Sleep(min(step, 30*time.Second))
				store.mu.Lock()
				store.down, store.skew = false, tt.skew
				store.mu.Unlock()
				time.Sleep(step)
				reps[1].cancel()
				reps = append(reps, start(101)) // at once, with the same budget
				time.Sleep(run - 4*step)
				for _, r := range reps {
					r.cancel()
				}
				wg.Wait()

				if got := maxInWindow(calls.calls, tt.per); got > tt.calls {
					t.Fatalf("a window of %s held %d calls, budget is %d", tt.per, got, tt.calls)
				}
				windows := float64(run) / float64(tt.per)
				use := float64(len(calls.calls)) / (windows * float64(tt.calls))
				t.Logf("%d calls in %.0f windows: %.1f%% of the budget", len(calls.calls), windows, 100*use)
				if use < 0.3 {
					t.Errorf("only %.1f%% of the budget used", 100*use)
				}
			})
		})
	}
}

// TestBudgetSpendsItUnderBacklog: with one replica and a fast store, the
// budget kept in the store is spent as fully as the one in memory.
func TestBudgetSpendsItUnderBacklog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const calls, per = 300, 5 * time.Minute
		l := NewBudgetLimiter(testBudget(t, newMemStore(1, time.Millisecond), calls, per, 30*time.Second))
		run := 6 * per
		got := len(hammer(t, l, 8, run, 100*time.Millisecond))
		want := int(0.98 * float64(calls) * float64(run/per))
		if got < want {
			t.Fatalf("%d calls in %s, want at least %d (98%% of the budget)", got, run, want)
		}
	})
}

// TestBudgetCountsCallsFromBeforeARestart: a process spends the budget and
// stops; the next one, on the same store, makes no call until per has passed
// since those calls ended, and then gets the whole budget at once, without
// waiting a window of its own.
func TestBudgetCountsCallsFromBeforeARestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const calls, per = 10, time.Minute
		store := newMemStore(2, 5*time.Millisecond)
		first := NewBudgetLimiter(testBudget(t, store, calls, per, 10*time.Second))
		for range calls {
			release, err := first.Acquire(t.Context(), 1)
			if err != nil {
				t.Fatal(err)
			}
			release()
		}
		ended := time.Now()
		time.Sleep(20 * time.Second)

		second := NewBudgetLimiter(testBudget(t, store, calls, per, 10*time.Second))
		release, err := second.Acquire(t.Context(), 1)
		if err != nil {
			t.Fatal(err)
		}
		release()
		if since := time.Since(ended); since < per {
			t.Fatalf("the restarted process called %s after the budget was spent, within the window of %s", since, per)
		} else if since > per+budgetClockAllowance+time.Second {
			t.Errorf("the restarted process waited until %s after the calls ended, want about %s", since, per)
		}
		if got := second.Available(); got != calls-1 {
			t.Errorf("available after the wait: %d, want %d", got, calls-1)
		}
	})
}

// TestBudgetFreesSlotsOfADeadProcess: a process takes every slot and dies
// before its calls end; another one waits for the slots' leases and the
// window, then goes on.
func TestBudgetFreesSlotsOfADeadProcess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const calls, per, callTimeout = 5, 10 * time.Second, 3 * time.Second
		store := newMemStore(3, 5*time.Millisecond)
		dead := NewBudgetLimiter(testBudget(t, store, calls, per, callTimeout))
		for range calls {
			if _, err := dead.Acquire(t.Context(), 1); err != nil { // never released
				t.Fatal(err)
			}
		}
		taken := time.Now()
		other := NewBudgetLimiter(testBudget(t, store, calls, per, callTimeout))
		release, err := other.Acquire(t.Context(), 1)
		if err != nil {
			t.Fatal(err)
		}
		release()
		lease := budgetOpTimeout + callTimeout + budgetLeaseSlack
		if waited := time.Since(taken); waited < callTimeout+per {
			t.Fatalf("a slot of the dead process was taken after %s, before its call could have ended and a window passed", waited)
		} else if waited > lease+per+time.Second {
			t.Errorf("waited %s for the dead process's slots, want about %s", waited, lease+per)
		}
	})
}

// TestBudgetFailsClosed: while the store cannot be reached no call is
// granted; Acquire says why after a while, and counts it; once the store is
// back calls flow again.
func TestBudgetFailsClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newMemStore(4, time.Millisecond)
		b := testBudget(t, store, 10, time.Minute, time.Second)
		l := NewBudgetLimiter(b)
		store.setDown(true)
		start := time.Now()
		_, err := l.Acquire(t.Context(), 1)
		if !errors.Is(err, ErrBudgetUnavailable) || !errors.Is(err, errStoreDown) {
			t.Fatalf("Acquire with the store down: %v, want ErrBudgetUnavailable wrapping the cause", err)
		}
		if waited := time.Since(start); waited < budgetFailAfter {
			t.Errorf("gave up after %s, want it to ride out %s (a leader election)", waited, budgetFailAfter)
		}
		if n := counterValue(b.unreachable); n != 1 {
			t.Errorf("bot_limiter_budget_unreachable_total = %v, want 1", n)
		}
		// Back within the retry window: the call waits, then goes.
		go func() {
			time.Sleep(3 * time.Second)
			store.setDown(false)
		}()
		release, err := l.Acquire(t.Context(), 1)
		if err != nil {
			t.Fatalf("Acquire once the store is back: %v", err)
		}
		release()
	})
}

// TestBudgetServesHigherPriorityFirst: the local queue in front of the
// shared budget still orders waiters by priority.
func TestBudgetServesHigherPriorityFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewBudgetLimiter(testBudget(t, newMemStore(5, time.Millisecond), 1, time.Second, time.Second))
		release, err := l.Acquire(t.Context(), 1)
		if err != nil {
			t.Fatal(err)
		}
		var order []int
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, prio := range []int{2, 1, 0} {
			wg.Go(func() {
				r, err := l.Acquire(t.Context(), prio)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				order = append(order, prio)
				mu.Unlock()
				r()
			})
			synctest.Wait()
		}
		release()
		wg.Wait()
		if want := []int{0, 1, 2}; !equal(order, want) {
			t.Fatalf("served %v, want %v", order, want)
		}
	})
}

// TestBudgetRemovesItsLostWrites: a take whose answer was lost is stored
// but its call is never made; the next read removes it, so it does not hold
// a slot for a lease and a window.
func TestBudgetRemovesItsLostWrites(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newMemStore(6, time.Millisecond)
		store.loseAnswer = 1
		b := testBudget(t, store, 2, time.Hour, time.Second)
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if _, _, err := b.take(ctx); err == nil {
			t.Fatal("take succeeded though every answer is lost")
		}
		store.mu.Lock()
		store.loseAnswer = 0
		store.mu.Unlock()
		release, _, err := b.take(t.Context())
		if err != nil || release == nil {
			t.Fatalf("take: %v", err)
		}
		release()
		release2, _, err := b.take(t.Context())
		if err != nil || release2 == nil {
			t.Fatalf("second take: %v (the lost writes still hold slots?)", err)
		}
		release2()
		var l budgetLog
		store.mu.Lock()
		_ = l.decode(store.value)
		store.mu.Unlock()
		if len(l.Entries) != 2 {
			t.Errorf("the log holds %d calls, want the 2 made: %+v", len(l.Entries), l.Entries)
		}
	})
}

func TestBudgetConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  BudgetConfig
		want string
	}{
		{"ok", BudgetConfig{Name: "10000.egress-a", Calls: 1, Per: time.Second, CallTimeout: time.Second}, ""},
		{"bad name", BudgetConfig{Name: "a b", Calls: 1, Per: time.Second, CallTimeout: time.Second}, `budget name "a b": want letters, digits, '-', '_' or '=' (and '.' between them)`},
		{"trailing dot", BudgetConfig{Name: "a.", Calls: 1, Per: time.Second, CallTimeout: time.Second}, `budget name "a.": want letters, digits, '-', '_' or '=' (and '.' between them)`},
		{"no calls", BudgetConfig{Name: "a", Per: time.Second, CallTimeout: time.Second}, "budget a: want positive calls, window and call timeout, got 0 per 1s, timeout 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			if err := tt.cfg.Validate(); err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBudgetMetricsRegister(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := newBudget(BudgetConfig{Name: "a", Calls: 1, Per: time.Second, CallTimeout: time.Second}, newMemStore(0, 0), discard(), reg); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range mfs {
		got = append(got, mf.GetName())
	}
	if want := []string{"bot_limiter_budget_conflicts_total", "bot_limiter_budget_unreachable_total"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("registered %v, want %v", got, want)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	return m.GetCounter().GetValue()
}

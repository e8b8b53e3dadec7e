package actions

import (
	"context"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

type grant struct{ start, arrive, done time.Time }

// hammer runs workers that call through the limiter with random latency
// for d of fake time, and returns every call.
func hammer(t *testing.T, l *Limiter, workers int, d, maxLatency time.Duration) []grant {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	var mu sync.Mutex
	var calls []grant
	var wg sync.WaitGroup
	for w := range workers {
		rng := rand.New(rand.NewPCG(uint64(w), 42))
		wg.Go(func() {
			for {
				release, err := l.Acquire(ctx, 1)
				if err != nil {
					return
				}
				g := grant{start: time.Now()}
				lat := time.Duration(rng.Int64N(int64(maxLatency) + 1))
				// The server sees the call somewhere between its start and its end.
				g.arrive = g.start.Add(time.Duration(rng.Float64() * float64(lat)))
				time.Sleep(lat)
				g.done = time.Now()
				release()
				mu.Lock()
				calls = append(calls, g)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return calls
}

// maxInWindow is the largest number of arrivals inside any window of per.
func maxInWindow(calls []grant, per time.Duration) int {
	ts := make([]time.Time, len(calls))
	for i, c := range calls {
		ts[i] = c.arrive
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	best, lo := 0, 0
	for hi := range ts {
		for ts[hi].Sub(ts[lo]) >= per {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}

func TestLimiterNeverExceedsBudgetInAnyWindow(t *testing.T) {
	tests := []struct {
		name       string
		calls      int
		per        time.Duration
		workers    int
		maxLatency time.Duration
		run        time.Duration
	}{
		{"comm100 default, fast calls", 300, 5 * time.Minute, 8, 50 * time.Millisecond, time.Hour},
		{"small budget, slow calls", 30, 10 * time.Second, 16, 2 * time.Second, 10 * time.Minute},
		{"one call per window", 1, time.Second, 4, 300 * time.Millisecond, 2 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := NewLimiter(tt.calls, tt.per, nil)
				calls := hammer(t, l, tt.workers, tt.run, tt.maxLatency)
				if got := maxInWindow(calls, tt.per); got > tt.calls {
					t.Fatalf("a window of %s held %d calls, budget is %d", tt.per, got, tt.calls)
				}
				windows := float64(tt.run) / float64(tt.per)
				t.Logf("%d calls in %.0f windows: %.1f%% of the budget", len(calls), windows,
					100*float64(len(calls))/(windows*float64(tt.calls)))
			})
		})
	}
}

func TestLimiterSpendsTheBudgetUnderBacklog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const calls, per = 300, 5 * time.Minute
		l := NewLimiter(calls, per, nil)
		run := 12 * per
		got := len(hammer(t, l, 8, run, 100*time.Millisecond))
		// A window starts when the previous one's calls end: the first window
		// is free, the rest lose at most the latency of one call each.
		want := int(0.98 * float64(calls) * float64(run/per))
		if got < want {
			t.Fatalf("%d calls in %s, want at least %d (98%% of the budget)", got, run, want)
		}
	})
}

func TestLimiterPauseStopsEveryone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLimiter(100, time.Minute, nil)
		start := time.Now()
		l.Pause(start.Add(30 * time.Second))
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				release, err := l.Acquire(t.Context(), 1)
				if err != nil {
					t.Error(err)
					return
				}
				release()
				if waited := time.Since(start); waited < 30*time.Second {
					t.Errorf("granted after %s, during the pause", waited)
				}
			})
		}
		wg.Wait()
	})
}

func TestLimiterServesHigherPriorityFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLimiter(1, time.Second, nil)
		release, _ := l.Acquire(t.Context(), 1)
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
			synctest.Wait() // queue them in this order
		}
		release()
		wg.Wait()
		if want := []int{0, 1, 2}; !equal(order, want) {
			t.Fatalf("served %v, want %v", order, want)
		}
	})
}

func TestLimiterAcquireHonoursContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLimiter(1, time.Hour, nil)
		r, _ := l.Acquire(t.Context(), 1)
		r()
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if _, err := l.Acquire(ctx, 1); err == nil {
			t.Fatal("acquired past the budget")
		}
		if l.Available() != 0 {
			t.Fatalf("available %d, want 0", l.Available())
		}
	})
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestLimiterProbesOneCallAtATimeAfterAnOutagePause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLimiter(100, time.Minute, nil)
		start := time.Now()
		l.PauseAndProbe(start.Add(10 * time.Second))
		var mu sync.Mutex
		inFlight, most := 0, 0
		var wg sync.WaitGroup
		for range 5 {
			wg.Go(func() {
				release, err := l.Acquire(t.Context(), 1)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				inFlight++
				most = max(most, inFlight)
				mu.Unlock()
				time.Sleep(time.Second)
				mu.Lock()
				inFlight--
				mu.Unlock()
				release()
			})
		}
		synctest.Wait()
		time.Sleep(15 * time.Second) // the pause, then probes one by one
		mu.Lock()
		if most != 1 {
			t.Errorf("%d calls at once while probing, want 1", most)
		}
		mu.Unlock()
		l.Resume() // the service answered: the rest go together
		wg.Wait()
		if time.Since(start) > 17*time.Second {
			t.Errorf("took %s: calls did not flow after Resume", time.Since(start))
		}
	})
}

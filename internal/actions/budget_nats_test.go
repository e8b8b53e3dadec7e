package actions

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/comm100bot/bot/internal/testenv"
)

// startJetStream runs an embedded NATS server with JetStream on a free port.
func startJetStream(t *testing.T) *server.Server {
	t.Helper()
	return testenv.JetStream(t)
}

// TestBudgetOnNATSNeverExceedsIt: limiters with connections of their own
// share one budget on a real JetStream server, with random call latencies;
// one of them dies holding slots and another starts. No window of per holds
// more than the budget, and the budget is spent.
func TestBudgetOnNATSNeverExceedsIt(t *testing.T) {
	const calls, per, workers = 10, time.Second, 4
	ns := startJetStream(t)
	cfg := BudgetConfig{Name: "10000", Calls: calls, Per: per, CallTimeout: 200 * time.Millisecond, Replicas: 1}
	var log callLog
	var wg sync.WaitGroup
	start := func(seed uint64) context.CancelFunc {
		b, err := OpenBudget(t.Context(), testenv.Connect(t, ns.ClientURL()), cfg, discard(), nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		runReplica(ctx, &wg, NewBudgetLimiter(b), workers, seed, 50*time.Millisecond, &log)
		return cancel
	}
	stops := []context.CancelFunc{start(1), start(2), start(3)}
	began := time.Now()
	time.Sleep(1500 * time.Millisecond)
	stops[0]() // dies, its calls in flight never marked ended
	stops = append(stops, start(4))
	time.Sleep(2500 * time.Millisecond)
	for _, stop := range stops {
		stop()
	}
	wg.Wait()
	run := time.Since(began)

	if got := maxInWindow(log.calls, per); got > calls {
		t.Fatalf("a window of %s held %d calls, budget is %d", per, got, calls)
	}
	windows := float64(run) / float64(per)
	use := float64(len(log.calls)) / (windows * calls)
	t.Logf("%d calls in %.1f windows: %.0f%% of the budget", len(log.calls), windows, 100*use)
	if use < 0.5 {
		t.Errorf("only %.0f%% of the budget used", 100*use)
	}
}

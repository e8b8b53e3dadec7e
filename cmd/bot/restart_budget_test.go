package main

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/comm100bot/bot/internal/comm100/comm100test"
)

// TestBudgetCountsCallsFromBeforeARestart: a single bot on the embedded
// server spends its whole budget and is restarted at once on the same
// store; the calls it made before still count, so the restarted bot waits
// for the window instead of being refused by Comm100.
func TestBudgetCountsCallsFromBeforeARestart(t *testing.T) {
	const calls, per = 8, 3 * time.Second
	sim, simArgs := startSim(t, comm100test.Config{RateLimit: comm100test.IPRateLimit{Calls: calls, Per: per}})
	args := append(simArgs,
		"--comm100.rate_limit.calls", fmt.Sprint(calls),
		"--comm100.rate_limit.per", per.String(),
		"--dispatch.workers", "4")
	store := t.TempDir()
	created := func() int { return countStatus(sim.Requests(), http.StatusCreated) }

	a, stop := runBot(t, store, args...)
	queueJobs(t, a, calls, "before")
	waitFor(t, "the first budget's calls", 10*time.Second, func() bool { return created() == calls })
	stop()

	b, _ := runBot(t, store, args...)
	queueJobs(t, b, calls, "after")
	waitFor(t, "the calls after the restart", 3*per+10*time.Second, func() bool { return created() == 2*calls })

	reqs := sim.Requests()
	if n := countStatus(reqs, http.StatusForbidden); n > 0 {
		t.Errorf("Comm100 refused %d calls: the restarted bot forgot the calls made before", n)
	}
	if most := windowMax(reqs, per); most > calls {
		t.Errorf("a window of %s held %d calls, the budget is %d", per, most, calls)
	}
	gap := reqs[calls].Time.Sub(reqs[calls-1].Time)
	t.Logf("first call after the restart came %s after the last one before it (window %s)", gap.Round(time.Millisecond), per)
}

package actions

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/comm100bot/bot/internal/comm100/comm100test"
	"github.com/comm100bot/bot/internal/job"
)

func TestWaitingTakesTheMostUrgentFirst(t *testing.T) {
	w := newWaiting()
	for _, p := range []string{"low", "", "normal", "high", "LOW", "high"} {
		w.push(task{job: &job.Job{ID: p + "-" + string(rune('a'+w.len())), Priority: p}})
	}
	w.close()
	var got []string
	for tk, ok := w.pop(); ok; tk, ok = w.pop() {
		got = append(got, tk.job.ID)
	}
	want := []string{"high-d", "high-f", "-b", "normal-c", "low-a", "LOW-e"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if _, ok := w.pop(); ok {
		t.Error("a closed, empty queue gave a task")
	}
}

// TestPoolTakesAHighJobBeforeTheNormalOnesWaiting: while the budget is
// short and normal jobs wait for a worker, a high job fetched after them is
// the next a worker takes.
func TestPoolTakesAHighJobBeforeTheNormalOnesWaiting(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	s := b.sim(comm100test.Config{}, 1, 100*time.Millisecond)
	for i := range 12 {
		b.publish(ticketJob("normal-" + string(rune('a'+i))))
	}
	high := ticketJob("urgent")
	high.Priority = job.PriorityHigh
	b.publish(high)
	b.startPool(Config{Workers: 2}, s.rt, poolOpts{limiter: s.limiter})
	waitFor(t, "every ticket", 20*time.Second, func() bool {
		return calls(s.Requests(), "POST", ticketsPath, http.StatusCreated) == 13
	})
	var order []string
	for _, r := range s.Requests() {
		if r.Method == "POST" && r.Path == ticketsPath {
			var body struct{ Subject string }
			_ = json.Unmarshal(r.Body, &body)
			order = append(order, body.Subject)
		}
	}
	// The two workers took the first two normal jobs as they came; the high
	// one is the next.
	if at := slices.Index(order, "ticket urgent"); at < 0 || at > 2 {
		t.Errorf("the high job was created %dth: %v", at+1, order)
	}
}

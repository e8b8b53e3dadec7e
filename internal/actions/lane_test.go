package actions

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/comm100bot/bot/internal/job"
)

// countingGauge is a gauge that keeps its value where the test reads it.
type countingGauge struct {
	prometheus.Gauge
	n int
}

func (g *countingGauge) Inc() { g.n++ }
func (g *countingGauge) Dec() { g.n-- }

// checkLane fails unless the lane's counts agree with the jobs running (in
// queue or with a worker), parked and leaving, and no parked job could start
// (unless the lane was stopped).
func checkLane(t *testing.T, l *lane, g *countingGauge, running, leaving []task, stopped bool) {
	t.Helper()
	sum, parked, targeted := 0, len(l.parked), 0
	for _, n := range l.busy {
		sum += n
	}
	for _, r := range running {
		if r.target != "" {
			targeted++
		}
	}
	if sum != l.targeted || targeted != l.targeted {
		t.Fatalf("targeted %d, busy %d in all, %d running with a target", l.targeted, sum, targeted)
	}
	if g.n != parked {
		t.Fatalf("gauge %d, %d parked", g.n, parked)
	}
	// Every job running or parked holds a slot, but those parked
	// without one, or handed to the workers by stop without one.
	slots := 0
	for _, r := range running {
		switch {
		case !r.slotless:
			slots++
		case !stopped:
			t.Fatalf("job %s with a worker holds no slot", r.job.ID)
		}
	}
	slotless := 0
	for _, p := range append(slices.Clip(l.parked), leaving...) {
		if p.slotless {
			slotless++
		} else {
			slots++
		}
	}
	if len(l.slots) != slots || l.slotless != slotless || slotless > l.parkRoom {
		t.Fatalf("%d slots taken, %d held; %d parked or leaving without one, %d counted, room for %d", len(l.slots), slots, slotless, l.slotless, l.parkRoom)
	}
	withSlot := 0
	for _, p := range l.parked {
		if !p.slotless {
			withSlot++
		}
	}
	if !stopped && slotless < l.parkRoom && withSlot > 0 {
		t.Fatalf("%d parked jobs hold a slot, and the park room has space", withSlot)
	}
	if stopped {
		return
	}
	if l.targeted > l.mostTargeted {
		t.Fatalf("%d running with a target, %d at most", l.targeted, l.mostTargeted)
	}
	for k, n := range l.busy {
		if n > l.share {
			t.Fatalf("%d running to %s, its share is %d", n, k, l.share)
		}
	}
	for _, p := range l.parked {
		if l.fitsLocked(p.target) {
			t.Fatalf("a job to %s is parked but could start", p.target)
		}
	}
}

// TestLaneAdmitsAndReleasesInTurn drives a lane's admissions with random
// jobs and ends, stops included, jobs leaving the lane when its park room is
// full and coming back: the counts always agree, no parked job could start,
// a job that leaves is never more urgent than one that stays, the parked
// jobs hold no more slots than the jobs still leaving, and once every job has
// ended or left none is left parked.
func TestLaneAdmitsAndReleasesInTurn(t *testing.T) {
	ranks := []string{"high", "", "low"}
	for seed := range uint64(3000) {
		r := rand.New(rand.NewPCG(seed, 1))
		g := &countingGauge{}
		now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
		// The room's bound is reached too.
		l := newLanes(1+r.IntN(6), r.IntN(4), g, func() time.Time { return now })[1]
		leave := r.IntN(3) > 0 // else jobs park with their slot past the room
		var mayLeave func() bool
		if leave {
			mayLeave = func() bool { return true }
		}
		var running, leaving []task
		jobs, ended, left := 0, 0, 0
		end := func(i int) {
			tk := running[i]
			running = append(running[:i], running[i+1:]...)
			ended++
			if n, ok := l.done(tk); ok {
				running = append(running, n)
			}
		}
		gone := func(i int) { // stored again for later, as the pool does
			tk := leaving[i]
			leaving = append(leaving[:i], leaving[i+1:]...)
			left++
			l.left(tk)
		}
		stopAt := -1
		if r.IntN(3) == 0 {
			stopAt = r.IntN(60)
		}
		for step := range 60 {
			now = now.Add(time.Duration(r.IntN(100)) * time.Millisecond)
			if step == stopAt {
				l.stop()
				for l.queue.len() > 0 {
					tk, _ := l.queue.pop()
					running = append(running, tk)
				}
			}
			// After a stop the fetcher takes no more jobs.
			switch {
			case (stopAt < 0 || step < stopAt) && (len(running) == 0 || r.IntN(2) == 0):
				target := ""
				if r.IntN(5) > 0 {
					target = fmt.Sprint("host-", r.IntN(4))
				}
				jobs++
				tk := task{job: &job.Job{ID: fmt.Sprint(jobs), Priority: ranks[r.IntN(3)]}, target: target}
				l.slots <- struct{}{} // as the fetcher takes it
				ok, out := l.admit(&tk, mayLeave)
				if ok {
					running = append(running, tk)
				}
				if out != nil {
					if !leave || l.slotless < l.parkRoom {
						t.Fatalf("seed %d: job %s left the lane, with %d of %d parked without a slot", seed, out.job.ID, l.slotless, l.parkRoom)
					}
					for _, p := range l.parked {
						if job.Rank(p.job.Priority) > job.Rank(out.job.Priority) {
							t.Fatalf("seed %d: a %q job left, a %q one stays", seed, out.job.Priority, p.job.Priority)
						}
					}
					if !out.backAt.After(now) {
						t.Fatalf("seed %d: job %s back at %s, now is %s", seed, out.job.ID, out.backAt, now)
					}
					leaving = append(leaving, *out)
				}
			case len(leaving) > 0 && r.IntN(2) == 0:
				gone(r.IntN(len(leaving)))
			case len(running) > 0:
				end(r.IntN(len(running)))
			}
			stopped := stopAt >= 0 && step >= stopAt
			checkLane(t, l, g, running, leaving, stopped)
			if withSlot := len(l.parked) - (l.slotless - slotlessOf(leaving)); leave && !stopped && withSlot > len(leaving) {
				t.Fatalf("seed %d: %d parked jobs hold a slot, %d leaving", seed, withSlot, len(leaving))
			}
		}
		for len(running) > 0 || len(leaving) > 0 {
			if len(leaving) > 0 {
				gone(0)
			} else {
				end(0)
			}
			checkLane(t, l, g, running, leaving, stopAt >= 0)
		}
		if len(l.parked) != 0 || ended+left != jobs || l.targeted != 0 || len(l.busy) != 0 || len(l.slots) != 0 || l.slotless != 0 {
			t.Fatalf("seed %d: parked %v left, %d of %d jobs ended and %d left, %d running with a target", seed, l.parked, ended, jobs, left, l.targeted)
		}
		l.pruneLocked()
		for h := range maps.Keys(l.ended) {
			if !l.backLocked(h, now) {
				t.Fatalf("seed %d: kept when %s's jobs ended, with nothing to come", seed, h)
			}
		}
		for h, at := range l.back {
			if !l.backLocked(h, now) {
				t.Fatalf("seed %d: kept when %s's last jobs come back, %v, at %s", seed, h, at, now)
			}
		}
	}
}

func yes() bool { return true }

func slotlessOf(ts []task) int {
	n := 0
	for _, t := range ts {
		if t.slotless {
			n++
		}
	}
	return n
}

// TestLaneLetsInTheFirstParked: a job parked for its host goes before the
// jobs of busier hosts parked after it, however many they are.
func TestLaneLetsInTheFirstParked(t *testing.T) {
	to := func(host, priority string) task {
		return task{job: &job.Job{ID: host, Priority: priority}, target: host}
	}
	l := newLanes(4, parkInHand, &countingGauge{}, time.Now)[1] // 3 with a target at most, 2 to one host
	running := []task{to("a", ""), to("a", ""), to("b", "")}
	admit := func(tk task) bool {
		l.slots <- struct{}{}
		ok, _ := l.admit(&tk, yes)
		return ok
	}
	for _, tk := range running {
		if !admit(tk) {
			t.Fatalf("job to %s parked", tk.target)
		}
	}
	if admit(to("c", "")) {
		t.Fatal("a fourth job with a target admitted")
	}
	// Jobs to a and b keep coming, each parked behind its host's own.
	admit(to("a", ""))
	admit(to("b", "high"))
	n, ok := l.next(running[0]) // a job to a ends
	if !ok || n.target != "b" {
		t.Fatalf("let in %+v, want the urgent job to b", n)
	}
	n, ok = l.next(running[1]) // another job to a ends
	if !ok || n.target != "c" {
		t.Fatalf("let in %+v, want the job to c, parked before the one to a", n)
	}
}

// TestLaneGivesBackTheSlotsOfLateParkedJobs: once the park room has space
// again, a job parked with its slot gives it back, so the fetcher may fetch
// again after one job ends, not after all those parked without a slot.
func TestLaneGivesBackTheSlotsOfLateParkedJobs(t *testing.T) {
	l := newLanes(3, 2, &countingGauge{}, time.Now)[1] // 2 with a target at most, 1 to one host
	l.slots = make(chan struct{}, 4)
	var running []task
	for i := range 6 {
		tk := task{job: &job.Job{ID: fmt.Sprint(i)}, target: "host"}
		if len(l.slots) == cap(l.slots) {
			t.Fatalf("no room for job %d", i)
		}
		l.slots <- struct{}{}
		if ok, _ := l.admit(&tk, nil); ok {
			running = append(running, tk)
		}
	}
	// 1 running, 2 parked without a slot, 3 parked with one: no room.
	if len(l.slots) != cap(l.slots) || len(running) != 1 {
		t.Fatalf("%d slots of %d taken, %d running", len(l.slots), cap(l.slots), len(running))
	}
	if _, ok := l.done(running[0]); !ok {
		t.Fatal("no parked job let in")
	}
	if room := cap(l.slots) - len(l.slots); room != 1 {
		t.Errorf("room for %d jobs after a job ended, want 1", room)
	}
}

// TestLaneSpacesTheJobsThatLeave: a job that leaves the lane comes back
// after the jobs to its target that the lane holds and those that left
// before it, but the less urgent ones, one per turn of the target: the time
// between its jobs' ends, counted to now (a target that stalls has longer
// turns), and no less than its budget's.
func TestLaneSpacesTheJobsThatLeave(t *testing.T) {
	start := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	now := start
	l := newLanes(3, 1, &countingGauge{}, func() time.Time { return now })[1] // 2 with a target at most, 1 to one host
	to := func(priority string) *task { return &task{job: &job.Job{ID: "crm", Priority: priority}, target: "crm"} }
	admit := func(tk *task) *task {
		t.Helper()
		l.slots <- struct{}{}
		_, out := l.admit(tk, yes)
		if out != nil {
			l.left(*out)
		}
		return out
	}
	// Jobs to crm end half a second apart, one always parked behind the
	// one running.
	running := to("")
	admit(running)
	admit(to(""))
	for i := range 5 {
		now = start.Add(time.Duration(i) * 500 * time.Millisecond)
		n, ok := l.done(*running)
		if !ok {
			t.Fatalf("end %d: no parked job let in", i)
		}
		running = &n
		if out := admit(to("")); out != nil {
			t.Fatalf("end %d: a job left with room to park", i)
		}
	}
	// The park room is full: the next ones leave, 0.4s apart (2s over 5
	// ends), after the one running and the one parked.
	for i, want := range []time.Duration{3200 * time.Millisecond, 3600 * time.Millisecond, 4000 * time.Millisecond} {
		if out := admit(to("low")); out == nil || !out.backAt.Equal(start.Add(want)) {
			t.Fatalf("job %d to crm back at %v, want +%s", i, out, want)
		}
	}
	// An urgent one stays, and the one parked, less urgent, leaves in
	// its place: it comes back after the one running and the urgent one,
	// not after the low ones that left before it.
	if out := admit(to("high")); out == nil || out.job.Priority != "" || !out.backAt.Equal(start.Add(3200*time.Millisecond)) {
		t.Fatalf("the job parked left, back at %v, want +3.2s", out)
	}
	// The next urgent one comes back after the one running and the one
	// parked, whatever less urgent ones left before it.
	if out := admit(to("high")); out == nil || out.job.Priority != "high" || !out.backAt.Equal(start.Add(3200*time.Millisecond)) {
		t.Fatalf("urgent job to crm back at %v, want +3.2s", out)
	}
	if out := admit(to("high")); out == nil || out.job.Priority != "high" || !out.backAt.Equal(start.Add(3600*time.Millisecond)) {
		t.Fatalf("second urgent job to crm back at %v, want +3.6s, after the first", out)
	}
	// Ten seconds on, with no end since: turns of 2.4s (12s over 5 ends).
	now = now.Add(10 * time.Second)
	if out := admit(to("high")); out == nil || !out.backAt.Equal(now.Add(3*2400*time.Millisecond)) {
		t.Fatalf("job to crm after a stall back at %v, want +7.2s", out)
	}
	// A budget of one call a minute: turns of a minute at least.
	l.minTurn = time.Minute
	if out := admit(to("high")); out == nil || !out.backAt.Equal(now.Add(3*time.Minute)) {
		t.Fatalf("job to crm under its budget back at %v, want +3m", out)
	}
}

// TestLaneChoosesWhoLeaves: of the job coming in and the parked jobs, the
// least urgent leaves a full lane; of those, one of the target with the
// most jobs in the lane, since another target's job may start at the next
// end; of those, the one due last, so that a job coming back from later
// does not leave again for one due after it.
func TestLaneChoosesWhoLeaves(t *testing.T) {
	early := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	l := newLanes(4, 4, &countingGauge{}, time.Now)[1] // 3 with a target at most, 2 to one host
	n := 0
	to := func(host, priority string, due time.Time) *task {
		n++
		return &task{job: &job.Job{ID: fmt.Sprint(host, "-", n), Priority: priority, Created: due}, target: host}
	}
	admit := func(tk *task) *task {
		t.Helper()
		l.slots <- struct{}{}
		_, out := l.admit(tk, yes)
		return out
	}
	parked := func(id string) bool {
		return slices.ContainsFunc(l.parked, func(q task) bool { return q.job.ID == id })
	}
	// Host a: 2 running, 4 parked; b: 1 running. The lane is full.
	for i := range 6 {
		if out := admit(to("a", "", early.Add(time.Duration(i)*time.Second))); out != nil {
			t.Fatalf("job %d to a left", i)
		}
	}
	admit(to("b", "", early))
	// A job to c, whose host has nothing in the lane, stays; a's last leaves.
	c := to("c", "", early.Add(time.Hour))
	if out := admit(c); out == nil || out.job.ID != "a-6" || !parked(c.job.ID) {
		t.Fatalf("left: %v; want a-6, with the job to c parked", out)
	}
	// A low one leaves, however short its host's line.
	if out := admit(to("c", "low", early)); out == nil || out.job.Priority != "low" {
		t.Fatalf("left: %v; want the low job", out)
	}
	// A job to a due before those parked stays; the one due last leaves.
	back := to("a", "", early.Add(-time.Minute))
	if out := admit(back); out == nil || out.job.ID != "a-5" || !parked(back.job.ID) {
		t.Fatalf("left: %v; want a-5, with the job due first parked", out)
	}
	// An urgent job to a stays too.
	high := to("a", "high", early.Add(time.Hour))
	if out := admit(high); out == nil || out.job.Priority == "high" || !parked(high.job.ID) {
		t.Fatalf("left: %v; want a job less urgent", out)
	}
}

// TestRecentEndsTurn: while a target has jobs running, its turn counts to
// now, so that one that stalls has longer turns; with none running, it is
// the mean gap between the ends kept, and not known from one end.
func TestRecentEndsTurn(t *testing.T) {
	start := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	var e recentEnds
	e.add(start)
	if d, ok := e.turn(start.Add(time.Hour), false); ok {
		t.Errorf("turn from one end, none running: %s", d)
	}
	if d, ok := e.turn(start.Add(3*time.Second), true); !ok || d != 3*time.Second {
		t.Errorf("turn from one end, one running: %s %v, want 3s", d, ok)
	}
	for i := 1; i < 40; i++ { // more than it keeps: the last 32
		e.add(start.Add(time.Duration(i) * time.Second))
	}
	now := start.Add(time.Hour)
	if d, ok := e.turn(now, false); !ok || d != time.Second {
		t.Errorf("turn with none running: %s %v, want 1s", d, ok)
	}
	oldest := start.Add(8 * time.Second)
	if d, ok := e.turn(now, true); !ok || d != now.Sub(oldest)/32 {
		t.Errorf("turn with one running: %s %v, want %s", d, ok, now.Sub(oldest)/32)
	}
}

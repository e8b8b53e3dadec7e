package actions

import (
	"fmt"
	"math/rand/v2"
	"testing"

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
// queue or with a worker) and parked, and no parked job could start (unless
// the lane was stopped).
func checkLane(t *testing.T, l *lane, g *countingGauge, running []task, stopped bool) {
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
	for _, p := range l.parked {
		if p.slotless {
			slotless++
		} else {
			slots++
		}
	}
	if len(l.slots) != slots || l.slotless != slotless || slotless > l.parkRoom {
		t.Fatalf("%d slots taken, %d held; %d parked without one, %d counted, room for %d", len(l.slots), slots, slotless, l.slotless, l.parkRoom)
	}
	if !stopped && slotless < l.parkRoom && parked > slotless {
		t.Fatalf("%d parked jobs hold a slot, and the park room has space", parked-slotless)
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
// jobs and ends, stops included: the counts always agree, no parked job
// could start, and once every job has ended none is left parked.
func TestLaneAdmitsAndReleasesInTurn(t *testing.T) {
	ranks := []string{"high", "", "low"}
	for seed := range uint64(3000) {
		r := rand.New(rand.NewPCG(seed, 1))
		g := &countingGauge{}
		l := newLanes(1+r.IntN(6), g)[1]
		l.parkRoom = r.IntN(4) // the room's bound is reached too
		var running []task
		jobs, ended := 0, 0
		end := func(i int) {
			tk := running[i]
			running = append(running[:i], running[i+1:]...)
			ended++
			if n, ok := l.done(tk); ok {
				running = append(running, n)
			}
		}
		stopAt := -1
		if r.IntN(3) == 0 {
			stopAt = r.IntN(60)
		}
		for step := range 60 {
			if step == stopAt {
				l.stop()
				for l.queue.len() > 0 {
					tk, _ := l.queue.pop()
					running = append(running, tk)
				}
			}
			// After a stop the fetcher takes no more jobs.
			if (stopAt < 0 || step < stopAt) && (len(running) == 0 || r.IntN(2) == 0) {
				target := ""
				if r.IntN(5) > 0 {
					target = fmt.Sprint("host-", r.IntN(4))
				}
				jobs++
				tk := task{job: &job.Job{ID: fmt.Sprint(jobs), Priority: ranks[r.IntN(3)]}, target: target}
				l.slots <- struct{}{} // as the fetcher takes it
				if l.admit(tk) {
					running = append(running, tk)
				}
			} else if len(running) > 0 {
				end(r.IntN(len(running)))
			}
			checkLane(t, l, g, running, stopAt >= 0 && step >= stopAt)
		}
		for len(running) > 0 {
			end(0)
			checkLane(t, l, g, running, stopAt >= 0)
		}
		if len(l.parked) != 0 || ended != jobs || l.targeted != 0 || len(l.busy) != 0 || len(l.slots) != 0 {
			t.Fatalf("seed %d: parked %v left, %d of %d jobs ended, %d running with a target", seed, l.parked, ended, jobs, l.targeted)
		}
	}
}

// TestLaneLetsInTheFirstParked: a job parked for its host goes before the
// jobs of busier hosts parked after it, however many they are.
func TestLaneLetsInTheFirstParked(t *testing.T) {
	to := func(host, priority string) task {
		return task{job: &job.Job{ID: host, Priority: priority}, target: host}
	}
	l := newLanes(4, &countingGauge{})[1] // 3 with a target at most, 2 to one host
	running := []task{to("a", ""), to("a", ""), to("b", "")}
	admit := func(tk task) bool {
		l.slots <- struct{}{}
		return l.admit(tk)
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
	l := newLanes(3, &countingGauge{})[1] // 2 with a target at most, 1 to one host
	l.slots, l.parkRoom = make(chan struct{}, 4), 2
	var running []task
	for i := range 6 {
		tk := task{job: &job.Job{ID: fmt.Sprint(i)}, target: "host"}
		if len(l.slots) == cap(l.slots) {
			t.Fatalf("no room for job %d", i)
		}
		l.slots <- struct{}{}
		if l.admit(tk) {
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

package actions

import "sync"

// outage counts the transient Comm100 failures in a row seen by any worker,
// and whose they were, for the pool's pause (see Policy). Without one count
// for the pool, every job in the queue would start its own backoff from the
// beginning, and an outage would meet a steady stream of calls instead of a
// thinning one. The first answer from Comm100 ends the streak. The zero
// value is ready to use; safe for concurrent use.
type outage struct {
	mu       sync.Mutex
	failures int
	// jobs are the first two distinct jobs of the streak: enough to tell
	// "Comm100 fails for everyone" from "Comm100 fails this one job".
	jobs [2]string
}

// streak returns the streak as seen by the job jobID.
func (o *outage) streak(jobID string) Streak {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := Streak{Failures: o.failures}
	for _, j := range o.jobs {
		if j != "" && j != jobID {
			s.Others = true
		}
	}
	return s
}

// fail records a failure of the job jobID.
func (o *outage) fail(jobID string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.failures++
	switch {
	case o.jobs[0] == "":
		o.jobs[0] = jobID
	case o.jobs[0] != jobID && o.jobs[1] == "":
		o.jobs[1] = jobID
	}
}

// ok records an answer from Comm100: it is up, the streak ends.
func (o *outage) ok() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.failures = 0
	o.jobs = [2]string{}
}

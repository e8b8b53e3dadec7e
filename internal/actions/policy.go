package actions

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/comm100bot/bot/internal/comm100"
)

// This file holds the pool's decisions as pure functions: from what is known
// when an attempt ends (the job's attempts, the error, the clock, the
// configuration) to what becomes of the job. The pool only carries them out.

// Verdict is what becomes of a job after an attempt.
type Verdict int

const (
	// Done: the job succeeded. It is recorded, then acknowledged.
	Done Verdict = iota + 1
	// Retry: try again in this delivery, after Decision.Delay.
	Retry
	// Redeliver: hand the job back to JetStream, to come back after
	// Decision.Delay (NakWithDelay).
	Redeliver
	// Dead: store the job in the DLQ with Decision.Reason, then terminate it.
	Dead
)

func (v Verdict) String() string {
	switch v {
	case Done:
		return "done"
	case Retry:
		return "retry"
	case Redeliver:
		return "redeliver"
	case Dead:
		return "dead"
	}
	return fmt.Sprintf("Verdict(%d)", int(v))
}

// Reasons a job is given up, as the DLQ shows them.
const (
	ReasonPermanent     = "permanent failure"
	ReasonExhausted     = "retries exhausted"
	ReasonInvalidParams = "invalid parameters"
	ReasonUnknownAction = "unknown action"
	// ReasonUndecodable: the stored job is not a job the pool can read (a
	// message that another publisher put on the jobs' subjects, or a bug).
	ReasonUndecodable = "undecodable"
)

// Pause is a stop of calls that a failure asks for, beyond the job's own fate.
type Pause struct {
	// For is how long no call may start; 0 is no pause.
	For time.Duration
	// Probe lets calls through one at a time once the pause ends, until one
	// is answered: Comm100 is failing for everyone, and one call finds out
	// whether it is back.
	Probe bool
	// Host is the http.request host to pause. Empty pauses every Comm100
	// call, that is the whole pool.
	Host string
}

// Decision is the outcome of an attempt.
type Decision struct {
	Verdict Verdict
	// Delay before the next attempt (Retry) or delivery (Redeliver).
	Delay time.Duration
	// Reason the job is given up (Dead).
	Reason string
	// Err is the error to report; it may say more than the attempt's own.
	Err   error
	Pause Pause
}

// Streak is the pool's count of transient Comm100 failures in a row, before
// the attempt being decided.
type Streak struct {
	Failures int
	// Others is true when some of those failures were other jobs': Comm100
	// is failing for everyone, not only for this job.
	Others bool
}

// Facts are what is known when an attempt has ended.
type Facts struct {
	Now time.Time
	// Due is when the job was due; the retry horizon counts from it.
	Due time.Time
	// Delivery is this delivery's number, from 1.
	Delivery uint64
	// Started is when this delivery's first attempt began.
	Started time.Time
	// History holds every attempt of the job, of earlier deliveries and
	// this one, the one being decided last.
	History []Attempt
	// Err is the attempt's error; nil is success.
	Err error
	// Comm100 says the action calls Comm100, which the whole pool shares.
	Comm100 bool
	Streak  Streak
	// Stopping says the pool is shutting down.
	Stopping bool
}

// Policy decides what becomes of a job after each attempt. Build it from a
// Config with Config.Policy.
type Policy struct {
	// RetryFor is the retry horizon, from the job's due time.
	RetryFor time.Duration
	// MaxAttempts caps the attempts since the job was due; 0 is no cap.
	MaxAttempts int
	// RetryInProcess is how long one delivery keeps retrying before it hands
	// the job back.
	RetryInProcess time.Duration
	// RateLimitPause is the pause after a rate-limit answer without Retry-After.
	RateLimitPause time.Duration
	// InProcess spaces the retries inside a delivery, by attempt in it.
	InProcess Backoff
	// Redelivery spaces the deliveries of a failing job, by delivery count.
	Redelivery Backoff
	// Outage spaces the pool's calls while Comm100 fails, by failures in a row.
	Outage Backoff
	// ForbiddenTries is how many bare 403 answers end a job. Zero means 3.
	ForbiddenTries int
}

// Decide returns what becomes of the job after an attempt. It is a pure
// function of f and p, apart from the jitter of p's backoffs.
func (p Policy) Decide(f Facts) Decision {
	err := f.Err
	if err == nil {
		return Decision{Verdict: Done}
	}
	dead := func(reason string, err error) Decision {
		return Decision{Verdict: Dead, Reason: reason, Err: err}
	}
	var pe *ParamError
	switch {
	case f.Stopping && Retryable(err):
		// Shutting down: hand the job back at once for the next start.
		return Decision{Verdict: Redeliver, Err: err}
	case errors.As(err, &pe):
		return dead(ReasonInvalidParams, err)
	case !Retryable(err):
		return dead(ReasonPermanent, err)
	}
	if n := bareForbidden(f.History); n >= p.forbiddenTries() {
		return dead(ReasonPermanent, Permanent(fmt.Errorf(
			"%d answers 403 without a rate-limit message: taken as permission denied: %w", n, err)))
	}
	if f.Now.Sub(f.Due) > p.RetryFor || (p.MaxAttempts > 0 && attemptsSince(f.History, f.Due) >= p.MaxAttempts) {
		return dead(ReasonExhausted, err)
	}
	d := Decision{Err: err, Pause: p.pause(f)}
	ra, _ := RetryAfter(err)
	wait := max(p.InProcess.Delay(attemptsSince(f.History, f.Started)), ra, d.Pause.For)
	if f.Now.Add(wait).Sub(f.Started) <= p.RetryInProcess {
		d.Verdict, d.Delay = Retry, wait
		return d
	}
	d.Verdict, d.Delay = Redeliver, p.redeliveryDelay(f, d.Pause, ra)
	return d
}

// pause says what stop of calls a transient failure asks for.
func (p Policy) pause(f Facts) Pause {
	ra, hasRA := RetryAfter(f.Err)
	switch {
	case rateLimited(f.Err):
		// The budget is spent: every Comm100 call waits, for as long as
		// the server said, else for the configured pause.
		if !hasRA {
			ra = p.RateLimitPause
		}
		return Pause{For: ra}
	case errors.Is(f.Err, comm100.ErrNotStoredYet):
		// Comm100 answered, about this job's chat: no outage.
		return Pause{}
	case errors.Is(f.Err, ErrBudgetUnavailable):
		// No call was made: NATS, not Comm100, is away, and the limiter
		// already waited for it.
		return Pause{}
	case f.Comm100:
		// Comm100 failing: the whole pool backs off, growing with the
		// failures in a row, then one call finds out whether it is back.
		return Pause{For: max(p.Outage.Delay(f.Streak.Failures+1), ra), Probe: true}
	}
	var he *HTTPError
	if hasRA && errors.As(f.Err, &he) && he.Host != "" {
		// Another system asked for time: only its own calls wait.
		return Pause{For: ra, Host: he.Host}
	}
	return Pause{}
}

// redeliveryDelay is how long a job handed back waits in JetStream.
func (p Policy) redeliveryDelay(f Facts, pause Pause, retryAfter time.Duration) time.Duration {
	d := p.Redelivery.Delay(int(min(f.Delivery, 1<<16)))
	switch {
	case pause.For > 0 && pause.Host == "" && !pause.Probe:
		// A rate limit is the budget's doing, not the job's: it comes back
		// when calls may start again.
		d = pause.For
	case pause.Probe && f.Streak.Others:
		// Comm100 is down for everyone. The job comes back no later than
		// the probe that ends the pause, so that when the probe succeeds
		// every waiting job is ready to flow, instead of sitting out a
		// delay of minutes in JetStream.
		d = min(d, pause.For)
	}
	return max(d, retryAfter)
}

func (p Policy) forbiddenTries() int {
	if p.ForbiddenTries > 0 {
		return p.ForbiddenTries
	}
	return 3
}

// bareForbidden counts the 403 answers that do not speak of a limit: Comm100
// answers both "permission denied" and "limit exceeded" with 403, and a bare
// 403 may be either, so a few are retried before the job is given up.
func bareForbidden(history []Attempt) int {
	n := 0
	for _, a := range history {
		if a.Status == http.StatusForbidden && !a.RateLimited {
			n++
		}
	}
	return n
}

// attemptsSince counts the attempts that started at or after t, those
// left out of a long story included (from the time of the entry that
// stands for them).
func attemptsSince(history []Attempt, t time.Time) int {
	n := 0
	for _, a := range history {
		if !a.Time.Before(t) {
			n += max(1, a.Omitted)
		}
	}
	return n
}

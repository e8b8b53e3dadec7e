// Package actions carries out the jobs that rules produce: the catalogue of
// actions and their typed parameters, the worker pool that consumes the
// ACTIONS stream, the limiter that keeps every Comm100 call inside the
// account's budget, and the retry policy.
//
// # Flow
//
// The rules engine publishes one [job.Job] per matching action to
// "actions.run.<action>" with the job id as Nats-Msg-Id ([Queue.Publish]); a
// delayed job waits as a message schedule on "actions.sched.<key>.<job>" and
// fires onto the same subject when due. Each of the [Pool]'s workers fetches
// one job from the durable "workers" consumer when it is free (nothing is
// prefetched) and, while it holds the job, reports InProgress three times per
// AckWait. For each delivery a worker (deliver.go):
//
//  1. decodes the job and looks it up in the [Ledger] (the jobs_done
//     bucket): a job that already succeeded is acknowledged without running
//     again, after its completion event is published if it was lost;
//  2. looks up its action and checks the rendered parameters against the
//     action's declarations ([Action.Check]): {{ templates }} are only known
//     now. An unknown action or a bad value goes to the DLQ at once;
//  3. runs the action. Every Comm100 call takes a token from the one shared
//     [Limiter] first (see [LimitedTransport]); the call's timeout starts
//     when the token is granted;
//  4. asks [Policy.Decide] what becomes of the job, and carries the
//     [Decision] out: Done, Retry (in this delivery, after a delay), Redeliver
//     (NakWithDelay) or Dead, plus any pause of calls the failure asks for.
//
// # Decisions
//
// [Policy.Decide] is a pure function of the job's attempts, the error, the
// clock and the configuration (policy.go, table-tested). One [Backoff]
// spaces every wait. Transient failures (429 or a 403 that speaks of a limit,
// 5xx, timeouts, connection errors) are retried in the delivery for
// dispatch.retry_in_process, then the job is handed back with a growing
// delay, until the retry horizon (dispatch.retry_for, from the job's due
// time) or dispatch.max_attempts: no goroutine sleeps on a held message
// through an outage. Permanent failures (other 4xx, bad parameters, three
// bare 403s across deliveries) go to the DLQ with every attempt.
//
// A rate-limit answer pauses every Comm100 call for its Retry-After (else
// dispatch.rate_limit_pause), and the job comes back when the pause ends.
// Other Comm100 failures in a row pause the whole pool for a growing time,
// then let one probe call through at a time until Comm100 answers. An
// http.request answered with Retry-After ([RetryAfterError], which
// [comm100.APIError] answers too) pauses only its own host.
//
// # Recovery after an outage
//
// The time from "Comm100 answers again" to "jobs flow again" is bounded by
// the probe interval: the outage pause is capped at 15s, so the first call
// after the end of an outage starts at most 15s later (a worker waiting in
// the limiter makes it). For the jobs already handed back, a job that fails
// while Comm100 fails for everyone (the streak holds other jobs' failures
// too) is redelivered no later than the end of the pool's current pause,
// instead of after its own backoff of up to 5 minutes: when a probe
// succeeds, those jobs are already back in JetStream, ready to flow. A job
// that fails alone keeps its own backoff, so one broken job does not spend
// the budget every 15s for a day.
//
// The other design, keeping the jobs in the pool's hands while it is paused
// and releasing them when a probe succeeds, would release them a little
// sooner, but a goroutine would hold an unbounded number of messages through
// an outage of any length, each kept alive by InProgress, and a crash would
// hand them all back at once. With capped redeliveries, the pool holds at
// most one job per worker, and JetStream holds the rest.
//
// # Ack, Nak, InProgress, Term
//
//   - Ack: the job is done. It is sent only after the done record is stored
//     (the pool keeps trying to store it for as long as it holds the job, so
//     a NATS blip repeats nothing) and the completion event, if asked for,
//     is published. The finished job is then deleted from the stream.
//   - Nak: "take it back now". A stopping pool naks every job it holds that
//     is not in a call (waiting for the budget or for a retry), so the next
//     start, or another replica, picks it up at once.
//   - NakWithDelay: "try again later": a transient failure past the
//     in-process budget, a job whose ledger lookup failed, a second delivery
//     of a job a worker already holds.
//   - InProgress: "still working, do not redeliver yet", sent three times
//     per AckWait while a job waits for the budget, sleeps before a retry,
//     is in a slow call or its record is being stored. The AckWait is short
//     (5s), so the jobs of a process that died come back within seconds.
//   - Term: "never redeliver": after the job is stored in the DLQ, or when
//     it cannot even be decoded.
package actions

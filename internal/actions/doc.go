// Package actions carries out the jobs that rules produce: the catalogue of
// actions, the worker pool that consumes the ACTIONS stream, the limiter that
// keeps every Comm100 call inside the account's budget, and retry
// classification.
//
// # Flow
//
// The rules engine publishes one [Job] per matching action to
// "actions.run.<action>" with the job id as Nats-Msg-Id; a delayed job waits
// as a message schedule on "actions.sched.<key>.<job>" and fires onto the same
// subject when due. Each of the [Pool]'s workers fetches one job from the
// durable "workers" consumer when it is free (nothing is prefetched, so no job
// waits unwatched past its AckWait) and, while it holds the job, reports
// InProgress on a ticker. For each job a worker:
//
//  1. decodes it and looks in the jobs_done bucket: a job that already
//     succeeded is acknowledged without running again;
//  2. looks up its action; an unknown action goes to the DLQ;
//  3. runs the action. Every Comm100 call takes a slot from the one shared
//     [Limiter] first (see [LimitedTransport]), whose slots are a [Budget]
//     kept in NATS and shared by the replicas that name it; the call's
//     timeout starts when the slot is granted;
//  4. on success records the job in jobs_done, publishes its
//     bot.action.completed event if asked, acknowledges it (Ack) and deletes
//     it from the stream;
//  5. on a transient failure (429 or a 403 that speaks of a limit, 5xx,
//     timeouts, connection errors) retries in-process with exponential
//     backoff and jitter for a few seconds. A rate-limit answer pauses the
//     limiter, so the whole pool waits; other Comm100 failures in a row pause
//     it for a growing time and then let one probe call through at a time. If
//     the failure outlasts the in-process budget the message is handed back
//     with NakWithDelay and a growing delay, until the retry horizon: no
//     goroutine sleeps on a held message through an outage;
//  6. on a permanent failure (other 4xx, bad params, three bare 403s) or past
//     the horizon, stores the job with every attempt in the DLQ and then
//     terminates it (Term). If the DLQ cannot take it, the job is handed back.
//
// Ack means done; Nak/NakWithDelay means "try again later"; InProgress means
// "still working, do not redeliver yet"; Term means "never redeliver".
package actions

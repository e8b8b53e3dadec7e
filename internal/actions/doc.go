// Package actions carries out the jobs that rules produce: the catalogue of
// actions, the worker pool that consumes the ACTIONS stream, the limiter that
// keeps every Comm100 call inside the account's budget, and retry
// classification.
//
// # Flow
//
// The rules engine publishes one [Job] per matching action to
// "actions.run.<action>" with the job id as Nats-Msg-Id. The [Pool] pulls jobs
// from the durable "workers" consumer into a bounded queue read by a fixed
// number of workers. For each job a worker:
//
//  1. decodes it and looks up its action; an undecodable job or an unknown
//     action is terminated (Term): redelivery cannot fix it;
//  2. runs the action. Every Comm100 call takes a token from the one shared
//     [Limiter] first (see [LimitedTransport]);
//  3. on success acknowledges the message (Ack);
//  4. on a transient failure (403/429 rate limit, 5xx, timeouts, connection
//     errors) retries in-process with exponential backoff and jitter for a few
//     seconds, reporting InProgress so JetStream does not redeliver meanwhile.
//     A rate-limit answer pauses the limiter, so the whole pool waits, not one
//     worker. If the failure outlasts the in-process budget the message is
//     handed back with NakWithDelay and a growing delay: no goroutine sleeps on
//     a held message through an outage;
//  5. on a permanent failure (other 4xx, bad params) terminates the message
//     (Term) and logs the job with its error.
//
// Ack means done; Nak/NakWithDelay means "try again later"; InProgress means
// "still working, do not redeliver yet"; Term means "never redeliver".
package actions

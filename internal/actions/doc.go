// Package actions carries out the jobs that rules produce: the catalogue of
// actions and their typed parameters, the worker pool that consumes the
// ACTIONS stream, the limiter that keeps every Comm100 call inside the
// account's budget, and the retry policy.
//
// # Flow
//
// The rules engine publishes one [job.Job] per matching action to a subject
// of its own, "actions.run.<action>.<job>" ([Queue.Publish]; <job> is
// [job.Token] of the job id, which is also its Nats-Msg-Id); a delayed job
// waits as a message schedule on "actions.sched.<key>.<job>" and fires onto
// its run subject when due. Every job is published only if its subject is
// empty, so a copy (its event evaluated again) is refused while the job is
// in the stream, and the rules count the refusal as stored
// ([AlreadyStored]); a copy stored after the job left the stream finds the
// job's record in the ledger (below). ACTIONS remembers message ids for
// seconds only. The [Pool] has two lanes, each a durable consumer with a
// fetcher and dispatch.workers workers of its own: "comm100-workers" takes
// the Comm100 jobs (actions.run.comm100.>), "other-workers" every job and passes
// over the Comm100 ones, so that a job waiting for the Comm100 budget holds
// back no other job. A lane's fetcher pulls jobs in batches
// sized to the room it has (one per worker plus a batch of cheap jobs,
// and the parked jobs below), so JetStream never hands the lane more than
// it can watch; the consumers set no MaxAckPending, which would count the
// jobs handed back to wait out a delay, and the jobs of every replica. A
// cheap job, one
// of a dry run or a "log" job that emits no completion event, and not a
// delayed one (it may have been cancelled), is carried out by the fetcher as
// it arrives (quick.go): it changes nothing outside the
// bot, so it skips the ledger (a repeat after a crash would repeat a log
// line), and a copy delivered again in the same process, after its ack was
// lost, is found among the ids of the jobs finished lately and acknowledged
// without a second run. Every other job goes to one of the lane's workers,
// but the jobs to outside systems (http.request) take at most all of them
// but one, and the jobs to one system (a host) half of those, rounded up:
// the jobs over these bounds wait, parked in the lane, for one of them to
// end (see [lane]); past the lane's park room, one of them leaves the
// lane, stored again as a schedule on "actions.sched.later.<job>" that
// fires onto its run subject in its host's turn ([Pool.reschedule]). Once
// the copy acknowledged is removed, its run subject is empty, so a copy of
// it is not refused: that copy may run first, and the one that fires finds
// its record. While
// jobs wait for a worker, the
// fetcher fetches no more than the workers can start, so jobs waiting for
// the Comm100 budget stay in JetStream. One goroutine reports InProgress
// three times per AckWait on every job held, parked, waiting for a worker
// or in one. For each job a worker (deliver.go):
//
//  1. looks the job up in the [Ledger] (the jobs_done
//     bucket): a job that already succeeded is acknowledged without running
//     again, after its completion event is published if it was lost, and so
//     is a copy of a job that went to the DLQ (recorded before its Term; a
//     redrive puts the job back under an id of its own) or of a delayed job
//     that schedule.cancel removed ([Queue.Cancel] records each);
//  2. looks up its action and checks the rendered parameters against the
//     action's declarations ([Action.Check]): {{ templates }} are only known
//     now. An unknown action or a bad value goes to the DLQ at once;
//  3. claims the job across replicas (claim.go): a key "claim.<hash>" in
//     jobs_done, created only if absent, names the worker and the end of its
//     lease, one call's timeout (comm100.timeout, or
//     dispatch.attempt_timeout for http.request) plus 15s for the record's
//     retries through an election; the worker renews it every quarter of the
//     lease while it holds the job. A worker that finds another's live claim
//     hands its copy back until the lease ends (NakWithDelay); a claim whose
//     lease ended (its owner died) is taken over with an update on the
//     revision read, so one of two takers wins; a claim that cannot be
//     written (no leader) is "cannot tell": the job is handed back. With
//     the claim taken, the ledger is read again (a worker that finished may
//     have released its claim since the first look). The claim is released
//     once the done record is stored, and kept to expire if it could not be;
//  4. runs the action. Every Comm100 call takes a slot from the one shared
//     [Limiter] first (see [LimitedTransport]), whose slots are a [Budget]
//     kept in NATS and shared by the replicas that name it; the call's
//     timeout starts when the slot is granted;
//  5. asks [Policy.Decide] what becomes of the job, and carries the
//     [Decision] out: Done, Retry (in this delivery, after a delay), Redeliver
//     (NakWithDelay) or Dead, plus any pause of calls the failure asks for.
//
// The ledger reads jobs_done through the leader of its stream, not by
// direct get, which any replica may answer, one that lags too (see
// leaderReads): a record or a claim that was written is seen. What a node
// loss or a crash may still repeat is a call whose worker died after
// Comm100 did the work and before its record: its claim expires, and the
// next worker runs the job again.
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
// hand them all back at once. With capped redeliveries, the pool holds about
// one job per worker, waiting or running, and JetStream holds the rest.
//
// # Ack, Nak, InProgress, Term
//
//   - Ack: the job is done. It is sent only after the done record is stored
//     (the pool keeps trying to store it for as long as it holds the job, so
//     a NATS blip repeats nothing) and the completion event, if asked for,
//     is published; a cheap job has no record. The ack is not awaited
//     (AckSync would add a round trip per job and promise nothing more): if
//     it is lost, JetStream delivers the job again after its AckWait, and
//     the copy finds the done record (or, for a cheap job, the ids finished
//     lately) and is acknowledged without running again.
//   - Removal: finished jobs are not deleted one by one. Every second (less
//     often when its passes are slow: a large backlog makes them so) a
//     sweeper (sweep.go) purges the run subjects of ACTIONS up to the lower
//     of the two consumers' ack floors (everything at or below it is
//     acknowledged or terminated by its lane), and deletes the jobs finished above a floor that an
//     earlier job, still failing, holds back, a bounded number per pass;
//     the rest go with the purge once the floor passes them. Schedules, on
//     other subjects, are never touched.
//   - Nak: "take it back now". A stopping pool naks every job it holds that
//     is not in a call (waiting for the budget or for a retry), so the next
//     start, or another replica, picks it up at once.
//   - NakWithDelay: "try again later": a transient failure past the
//     in-process budget, a job whose ledger lookup or claim failed, a job
//     another replica's worker has claimed (until its lease ends), a second
//     delivery of a job a worker already holds.
//   - InProgress: "still working, do not redeliver yet", sent three times
//     per AckWait while a job waits for a worker or for the budget, sleeps
//     before a retry, is in a slow call or its record is being stored. The AckWait is short
//     (5s), so the jobs of a process that died come back within seconds.
//   - Term: "never redeliver": after the job is stored in the DLQ, or when
//     it cannot even be decoded.
package actions

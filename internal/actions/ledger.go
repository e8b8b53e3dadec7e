package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/job"
)

// Ledger is what the pool remembers of jobs across deliveries: which
// succeeded, so that a redelivered copy is not carried out twice, and the
// attempts of those still failing, for the retry decisions and the DLQ's
// story. Safe for concurrent use.
type Ledger interface {
	// Done returns the record of a job that succeeded; ok is false when the
	// job has none. An error means the ledger could not tell.
	Done(ctx context.Context, jobID string) (rec DoneRecord, ok bool, err error)
	// RecordDone stores that a job succeeded, was cancelled, or failed for
	// good. A cancelled or dead record never replaces one already there: a
	// job that fired and ran while it was being cancelled keeps its result.
	RecordDone(ctx context.Context, jobID string, rec DoneRecord) error
	// Attempts returns the stored attempts of a job; none is not an error.
	Attempts(ctx context.Context, jobID string) ([]Attempt, error)
	// SaveAttempts stores the attempts of a job that will be delivered again.
	SaveAttempts(ctx context.Context, jobID string, attempts []Attempt) error
	// Forget drops the attempts of a job that is finished.
	Forget(ctx context.Context, jobID string) error
}

// DoneRecord is what the ledger keeps of a job that succeeded: enough to
// emit its completion event again if a redelivered copy finds it. A delayed
// job that schedule.cancel removed has a record too, with Cancelled set, and
// so has a job moved to the DLQ, with Dead set, so that a copy stored again
// later is not carried out either (bot dlq redrive puts the job back under
// an id of its own).
type DoneRecord struct {
	Result    Result    `json:"result"`
	Done      time.Time `json:"done"`
	Cancelled bool      `json:"cancelled,omitempty"`
	Dead      bool      `json:"dead,omitempty"`
}

// KVLedger is the Ledger on two JetStream key-value buckets: jobs_done and
// jobs_attempts, keyed by a hash of the job id.
type KVLedger struct {
	done, attempts jetstream.KeyValue
}

// keepAttempts is how many attempts a job's story keeps: the first and the
// latest, over a long outage.
const keepAttempts = 50

// OpenLedger creates or updates the buckets, replicated replicas times, with
// records kept long enough to outlive every redelivery within retryFor.
func OpenLedger(ctx context.Context, js jetstream.JetStream, retryFor time.Duration, replicas int) (*KVLedger, error) {
	done, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      bus.DoneBucket,
		Description: "ids of jobs that succeeded, so that a redelivered copy is not carried out twice",
		TTL:         retryFor + 24*time.Hour,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("create bucket %s: %w", bus.DoneBucket, err)
	}
	if done, err = leaderReads(ctx, js, done); err != nil {
		return nil, err
	}
	attempts, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      bus.AttemptsBucket,
		Description: "attempts of jobs that are still failing, for the dead-letter story",
		TTL:         retryFor + time.Hour,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("create bucket %s: %w", bus.AttemptsBucket, err)
	}
	return &KVLedger{done: done, attempts: attempts}, nil
}

// leaderReads binds kv again so that its reads go to the leader of its
// stream. A key-value handle reads through direct get when the stream allows
// it, and any replica may answer a direct get, one that lags behind too: a
// lagging replica could say a job that ran is not done, or miss a claim. The
// handle chooses at bind time, from the stream's AllowDirect; the bucket is
// updated with AllowDirect off (a replica that starts turns it on again for a
// moment with CreateOrUpdateKeyValue, which does not change the handles
// already bound) and bound again. Only the ledger's reads of jobs_done pay
// the round trip to the leader.
func leaderReads(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue) (jetstream.KeyValue, error) {
	name := "KV_" + kv.Bucket()
	if _, err := streamReadByLeader(ctx, js, name); err != nil {
		return nil, err
	}
	kv, err := js.KeyValue(ctx, kv.Bucket())
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", name, err)
	}
	return kv, nil
}

// streamReadByLeader opens stream name with direct reads turned off, so
// that every read of it goes to its leader: any replica may answer a direct
// read, one that lags behind too.
func streamReadByLeader(ctx context.Context, js jetstream.JetStream, name string) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("open stream %s: %w", name, err)
	}
	if cfg := s.CachedInfo().Config; cfg.AllowDirect {
		cfg.AllowDirect = false
		if s, err = js.UpdateStream(ctx, cfg); err != nil {
			return nil, fmt.Errorf("turn off direct reads of stream %s: %w", name, err)
		}
	}
	return s, nil
}

// Claim is a worker's hold on a job with side effects, kept in jobs_done
// under "claim.<hash of the job id>": while Until has not passed, no other
// worker runs the job.
type Claim struct {
	Owner string    `json:"owner"`
	Until time.Time `json:"until"`
}

// claimer is a Ledger that can claim jobs across replicas. The pool claims
// a job with side effects before it runs it, so that two replicas that both
// hold a delivery of it (a redelivery after a lost consumer leader, a late
// progress report) do not both call.
type claimer interface {
	// Claim takes jobID for owner until now+lease, or takes over a claim
	// whose lease has passed (its owner died), or renews owner's own. It
	// returns the claim's revision, or 0 and the live claim of another
	// owner. An error means the claim could not be written or read.
	Claim(ctx context.Context, jobID, owner string, now time.Time, lease time.Duration) (rev uint64, other Claim, err error)
	// RenewClaim moves the end of owner's claim at revision rev to until,
	// and returns its new revision. It fails with
	// jetstream.ErrKeyRevisionMismatch if the claim was taken over.
	RenewClaim(ctx context.Context, jobID, owner string, rev uint64, until time.Time) (uint64, error)
	// ReleaseClaim removes the claim at revision rev.
	ReleaseClaim(ctx context.Context, jobID string, rev uint64) error
}

// Claim implements claimer. A Create takes a free key; a claim found is
// taken over only by an Update on the revision read (compare and set), so
// of two workers that find the same stale claim, one wins.
func (l *KVLedger) Claim(ctx context.Context, jobID, owner string, now time.Time, lease time.Duration) (uint64, Claim, error) {
	key := claimKey(jobID)
	data, err := json.Marshal(Claim{Owner: owner, Until: now.Add(lease).UTC()})
	if err != nil {
		return 0, Claim{}, fmt.Errorf("encode claim of job %s: %w", jobID, err)
	}
	for range 3 {
		rev, err := l.done.Create(ctx, key, data)
		if err == nil {
			return rev, Claim{}, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return 0, Claim{}, fmt.Errorf("claim job %s: %w", jobID, err)
		}
		e, err := l.done.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			continue // released meanwhile
		case err != nil:
			return 0, Claim{}, fmt.Errorf("read claim of job %s: %w", jobID, err)
		}
		var c Claim
		// A claim that cannot be read holds nothing.
		_ = json.Unmarshal(e.Value(), &c)
		if c.Owner != owner && c.Until.After(now) {
			return 0, c, nil
		}
		rev, err = l.done.Update(ctx, key, data, e.Revision())
		switch {
		case err == nil:
			return rev, Claim{}, nil
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch):
			continue // another worker was quicker
		default:
			return 0, Claim{}, fmt.Errorf("take over claim of job %s: %w", jobID, err)
		}
	}
	return 0, Claim{}, fmt.Errorf("claim job %s: the claim keeps changing", jobID)
}

// RenewClaim implements claimer.
func (l *KVLedger) RenewClaim(ctx context.Context, jobID, owner string, rev uint64, until time.Time) (uint64, error) {
	data, err := json.Marshal(Claim{Owner: owner, Until: until.UTC()})
	if err != nil {
		return 0, fmt.Errorf("encode claim of job %s: %w", jobID, err)
	}
	rev, err = l.done.Update(ctx, claimKey(jobID), data, rev)
	if err != nil {
		return 0, fmt.Errorf("renew claim of job %s: %w", jobID, err)
	}
	return rev, nil
}

// ReleaseClaim implements claimer.
func (l *KVLedger) ReleaseClaim(ctx context.Context, jobID string, rev uint64) error {
	if err := l.done.Delete(ctx, claimKey(jobID), jetstream.LastRevision(rev)); err != nil {
		return fmt.Errorf("release claim of job %s: %w", jobID, err)
	}
	return nil
}

// claimKey is the key of a job's claim in jobs_done.
func claimKey(jobID string) string { return "claim." + ledgerKey(jobID) }

// Done implements Ledger.
func (l *KVLedger) Done(ctx context.Context, jobID string) (DoneRecord, bool, error) {
	e, err := l.done.Get(ctx, ledgerKey(jobID))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return DoneRecord{}, false, nil
	case err != nil:
		return DoneRecord{}, false, fmt.Errorf("look up job %s: %w", jobID, err)
	}
	var rec DoneRecord
	// A record that cannot be read still says the job is done.
	_ = json.Unmarshal(e.Value(), &rec)
	return rec, true, nil
}

// RecordDone implements Ledger.
func (l *KVLedger) RecordDone(ctx context.Context, jobID string, rec DoneRecord) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode record of job %s: %w", jobID, err)
	}
	if rec.Cancelled || rec.Dead {
		_, err = l.done.Create(ctx, ledgerKey(jobID), data)
		if errors.Is(err, jetstream.ErrKeyExists) {
			return nil // finished already
		}
	} else {
		_, err = l.done.Put(ctx, ledgerKey(jobID), data)
	}
	if err != nil {
		return fmt.Errorf("record job %s: %w", jobID, err)
	}
	return nil
}

// Attempts implements Ledger.
func (l *KVLedger) Attempts(ctx context.Context, jobID string) ([]Attempt, error) {
	e, err := l.attempts.Get(ctx, ledgerKey(jobID))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("attempts of job %s: %w", jobID, err)
	}
	var a []Attempt
	if err := json.Unmarshal(e.Value(), &a); err != nil {
		return nil, fmt.Errorf("attempts of job %s: %w", jobID, err)
	}
	return a, nil
}

// SaveAttempts implements Ledger. Of a long story it keeps the first and
// the latest attempts, and one entry that counts those between (see
// Attempt.Omitted), so that dispatch.max_attempts still counts them all.
func (l *KVLedger) SaveAttempts(ctx context.Context, jobID string, a []Attempt) error {
	a = shorten(a)
	data, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode attempts of job %s: %w", jobID, err)
	}
	if _, err := l.attempts.Put(ctx, ledgerKey(jobID), data); err != nil {
		return fmt.Errorf("save attempts of job %s: %w", jobID, err)
	}
	return nil
}

// shorten keeps the first keepAttempts/2 attempts of a story longer than
// keepAttempts and its latest, with one entry between them that stands for
// the attempts left out.
func shorten(a []Attempt) []Attempt {
	if len(a) <= keepAttempts {
		return a
	}
	head, tail := keepAttempts/2, len(a)-(keepAttempts/2-1)
	gap := Attempt{Time: a[head].Time, Delivery: a[head].Delivery, Omitted: attemptsSince(a[head:tail], time.Time{})}
	out := make([]Attempt, 0, keepAttempts)
	out = append(out, a[:head]...)
	out = append(out, gap)
	return append(out, a[tail:]...)
}

// Forget implements Ledger.
func (l *KVLedger) Forget(ctx context.Context, jobID string) error {
	if err := l.attempts.Purge(ctx, ledgerKey(jobID)); err != nil {
		return fmt.Errorf("forget attempts of job %s: %w", jobID, err)
	}
	return nil
}

// ledgerKey turns a job id into a key-value key.
func ledgerKey(jobID string) string { return job.Token(jobID) }

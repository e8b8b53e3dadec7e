package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/comm100bot/bot/internal/bus"
)

// Ledger is what the pool remembers of jobs across deliveries: which
// succeeded, so that a redelivered copy is not carried out twice, and the
// attempts of those still failing, for the retry decisions and the DLQ's
// story. Safe for concurrent use.
type Ledger interface {
	// Done returns the record of a job that succeeded; ok is false when the
	// job has none. An error means the ledger could not tell.
	Done(ctx context.Context, jobID string) (rec DoneRecord, ok bool, err error)
	// RecordDone stores that a job succeeded.
	RecordDone(ctx context.Context, jobID string, rec DoneRecord) error
	// Attempts returns the stored attempts of a job; none is not an error.
	Attempts(ctx context.Context, jobID string) ([]Attempt, error)
	// SaveAttempts stores the attempts of a job that will be delivered again.
	SaveAttempts(ctx context.Context, jobID string, attempts []Attempt) error
	// Forget drops the attempts of a job that is finished.
	Forget(ctx context.Context, jobID string) error
}

// DoneRecord is what the ledger keeps of a job that succeeded: enough to
// emit its completion event again if a redelivered copy finds it.
type DoneRecord struct {
	Result Result    `json:"result"`
	Done   time.Time `json:"done"`
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
	if _, err := l.done.Put(ctx, ledgerKey(jobID), data); err != nil {
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

// SaveAttempts implements Ledger. It keeps the first and the latest attempts
// of a long story.
func (l *KVLedger) SaveAttempts(ctx context.Context, jobID string, a []Attempt) error {
	if len(a) > keepAttempts {
		a = append(a[:keepAttempts/2:keepAttempts/2], a[len(a)-keepAttempts/2:]...)
	}
	data, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode attempts of job %s: %w", jobID, err)
	}
	if _, err := l.attempts.Put(ctx, ledgerKey(jobID), data); err != nil {
		return fmt.Errorf("save attempts of job %s: %w", jobID, err)
	}
	return nil
}

// Forget implements Ledger.
func (l *KVLedger) Forget(ctx context.Context, jobID string) error {
	if err := l.attempts.Purge(ctx, ledgerKey(jobID)); err != nil {
		return fmt.Errorf("forget attempts of job %s: %w", jobID, err)
	}
	return nil
}

// ledgerKey turns a job id into a key-value key.
func ledgerKey(jobID string) string { return hashToken(jobID) }

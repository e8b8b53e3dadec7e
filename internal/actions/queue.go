package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/job"
)

// ScheduleSubjectPrefix is where delayed jobs wait:
// actions.sched.<key hash>.<job hash>. The key hash groups the jobs that one
// schedule.cancel removes. The jobs that left a lane to come back when their
// host has room wait on actions.sched.later.<job hash> (see
// [Pool.reschedule]): no key hashes to "later", so no schedule.cancel
// removes them.
const ScheduleSubjectPrefix = "actions.sched."

// Queue puts jobs on the ACTIONS stream: jobs due now on
// actions.run.<action>.<job token>, delayed jobs as JetStream message
// schedules that fire onto that subject when due. It also cancels and counts
// delayed jobs.
type Queue struct {
	JS jetstream.JetStream
	// Batcher, if set, carries PublishAsync: jobs sent together are stored
	// together (see bus.Batcher).
	Batcher *bus.Batcher
	// MayRemove, if set, says whether Cancel may remove schedules now
	// (see Pool.MayRemove); when it says no, Cancel records the jobs as
	// cancelled and fails, to be tried again.
	MayRemove func() bool
}

// ErrUnencodable is returned (wrapped) for a job whose rendered params JSON
// cannot hold, such as the +Inf of a division by zero. Retrying cannot help.
var ErrUnencodable = errors.New("job cannot be encoded")

// Publish makes the job durable. A job published again while a copy of it
// is stored is not stored twice.
func (q *Queue) Publish(ctx context.Context, j *job.Job) error {
	msg, err := jobMsg(j)
	if err != nil {
		return err
	}
	if _, err := q.JS.PublishMsg(ctx, msg); err != nil && !AlreadyStored(err) {
		return fmt.Errorf("publish job %s: %w", j.ID, err)
	}
	return nil
}

// PublishAsync sends the job without waiting for the server: the job is
// durable once the returned future's Ok channel delivers, or its Err channel
// an error that AlreadyStored accepts. Many jobs can be sent this way and
// their PubAcks awaited together.
func (q *Queue) PublishAsync(j *job.Job) (jetstream.PubAckFuture, error) {
	msg, err := jobMsg(j)
	if err != nil {
		return nil, err
	}
	if q.Batcher != nil {
		return q.Batcher.PublishAsync(msg), nil
	}
	f, err := q.JS.PublishMsgAsync(msg)
	if err != nil {
		return nil, fmt.Errorf("publish job %s: %w", j.ID, err)
	}
	return f, nil
}

// jobMsg is the message that carries j: on its run subject, or, for a
// delayed job, as a message schedule that fires onto it. Either subject is
// the job's own, and the message asks the stream to store it only if the
// subject holds nothing (Nats-Expected-Last-Subject-Sequence: 0): while a
// job waits, is retried or is finished but not yet removed, a copy of it is
// refused, however long after the first it comes (see AlreadyStored).
func jobMsg(j *job.Job) (*nats.Msg, error) {
	data, err := job.Encode(j)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnencodable, j.ID, err)
	}
	token := job.Token(j.ID)
	run := job.RunSubjectOf(j.Action, token)
	msg := &nats.Msg{Subject: run, Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, token)
	msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
	if !j.RunAt.IsZero() {
		msg.Subject = ScheduleSubjectPrefix + job.Token(j.Key) + "." + token
		setSchedule(msg.Header, j.RunAt, run)
	}
	return msg, nil
}

// setSchedule makes the message carrying h a schedule that fires onto
// target at at.
func setSchedule(h nats.Header, at time.Time, target string) {
	// RFC 3339 with nanoseconds: the server parses fractions, and
	// WithScheduleAt would round them away and fire early.
	h.Set(jetstream.ScheduleHeader, "@at "+at.UTC().Format(time.RFC3339Nano))
	// The job fired is stored whatever its subject holds: the server
	// drops the Nats-Expected headers of a schedule when it fires.
	h.Set(jetstream.ScheduleTargetHeader, target)
}

// AlreadyStored reports whether err is the stream refusing a job because a
// copy of it is stored: its subject holds a message (see jobMsg). The job is
// then as good as stored. A refusal because a message on the subject is
// still being replicated is not this: that message may yet fail.
func AlreadyStored(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence {
		return false
	}
	// "wrong last sequence: <seq>"; 0 when the stream could not read the
	// subject's last message, which says nothing.
	return !strings.HasSuffix(apiErr.Description, ": 0")
}

// Cancel removes every pending delayed job with key and returns how many.
// settle, if not nil, is called with the id of each before it is removed;
// the pool records it as cancelled in its ledger, so that a copy of the job
// stored again later (its event evaluated again after the schedule is gone)
// is not carried out when it fires. A job of the key stored after Cancel
// has read the schedules is not removed: it was scheduled after the cancel.
// The stream is read through its leader (ACTIONS takes no direct reads),
// which holds every schedule stored.
func (q *Queue) Cancel(ctx context.Context, key string, settle func(ctx context.Context, jobID string) error) (uint64, error) {
	// Setup turns direct reads off; an older replica (a rolling upgrade)
	// may have turned them on again.
	s, err := streamReadByLeader(ctx, q.JS, bus.ActionsStream)
	if err != nil {
		return 0, fmt.Errorf("cancel %q: %w", key, err)
	}
	filter := ScheduleSubjectPrefix + job.Token(key) + ".>"
	var n, last uint64
	for next := uint64(1); ; n++ {
		m, err := s.GetMsg(ctx, next, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("cancel %q: %w", key, err)
		}
		last, next = m.Sequence, m.Sequence+1
		var j job.Job
		// A schedule that is not a job has no record to leave.
		if settle == nil || json.Unmarshal(m.Data, &j) != nil || j.ID == "" {
			continue
		}
		if err := settle(ctx, j.ID); err != nil {
			return 0, fmt.Errorf("cancel %q: %w", key, err)
		}
	}
	if n == 0 {
		return 0, nil
	}
	if q.MayRemove != nil && !q.MayRemove() {
		// Each is recorded as cancelled, and is not carried out if it
		// fires; they are removed when the cancel is tried again.
		return 0, Transient(fmt.Errorf("cancel %q: %w", key, errNoRoom))
	}
	// Only the schedules read above: each has its record.
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(filter), jetstream.WithPurgeSequence(last+1)); err != nil {
		return 0, fmt.Errorf("cancel %q: %w", key, err)
	}
	return n, nil
}

// Scheduled returns how many delayed jobs are waiting.
func (q *Queue) Scheduled(ctx context.Context) (uint64, error) {
	s, err := q.JS.Stream(ctx, bus.ActionsStream)
	if err != nil {
		return 0, err
	}
	return countMessages(ctx, s, ScheduleSubjectPrefix+">")
}

// countMessages counts the messages of a stream on the subjects matching filter.
func countMessages(ctx context.Context, s jetstream.Stream, filter string) (uint64, error) {
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n, nil
}

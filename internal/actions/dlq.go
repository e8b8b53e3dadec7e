package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/job"
)

// Attempt is one try at a job.
type Attempt struct {
	Time     time.Time     `json:"time"`
	Delivery uint64        `json:"delivery"`
	Duration time.Duration `json:"duration"`
	// Status is the HTTP status of the answer, 0 when there was none.
	Status int `json:"status,omitempty"`
	// Code is Comm100's error code, when it sent one.
	Code int `json:"code,omitempty"`
	// RateLimited is true when the answer said the request limit was hit.
	RateLimited bool   `json:"rate_limited,omitempty"`
	Error       string `json:"error,omitempty"`
	// Omitted, when not 0, makes this entry stand for that many attempts
	// left out of the middle of a long story (from Time on): the story
	// keeps its first and latest attempts, and the count of all of them.
	Omitted int `json:"omitted,omitempty"`
}

// countAttempts is how many attempts a story holds, those left out
// included.
func countAttempts(story []Attempt) int {
	return attemptsSince(story, time.Time{})
}

// Count is how many attempts d's story holds, those left out included.
func (d *DeadJob) Count() int { return countAttempts(d.Attempts) }

// DeadJob is a job that failed for good, with its story.
type DeadJob struct {
	Job      job.Job   `json:"job"`
	Reason   string    `json:"reason"`
	Error    string    `json:"error"`
	Attempts []Attempt `json:"attempts"`
	Failed   time.Time `json:"failed"`
	// Stored is, for a job that could not be decoded, the message as it
	// was stored (its first maxStoredText bytes), and its subject; Job
	// then holds only the message id.
	Stored        string `json:"stored,omitempty"`
	StoredSubject string `json:"stored_subject,omitempty"`
}

// maxStoredText is how much of an undecodable job the DLQ keeps.
const maxStoredText = 64 << 10

// ErrUndecodable is the answer to a redrive of a job that could not be
// decoded: there is nothing to run.
var ErrUndecodable = errors.New("the job could not be decoded; there is nothing to redrive (bot dlq show has it as stored)")

// DeadLetter is a DeadJob as stored, with its sequence in the DLQ stream,
// which is the id that `bot dlq show` and `bot dlq redrive` take.
type DeadLetter struct {
	Seq uint64 `json:"seq"`
	DeadJob
}

// Redacted is d for display: its params without credentials or the paths
// and queries of URLs (see redactParams). Redrive the stored job, not this.
func (d DeadLetter) Redacted() DeadLetter {
	d.Job.Params = redactParams(d.Job.Params)
	if d.Stored != "" {
		// An undecodable job as stored: redacted as params are if it is a
		// JSON object, else not shown (it may hold anything).
		var obj map[string]any
		dec := json.NewDecoder(strings.NewReader(d.Stored))
		dec.UseNumber() // numbers as they were, not rounded to float64
		if dec.Decode(&obj) == nil && dec.Decode(&struct{}{}) == io.EOF {
			var b strings.Builder
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(false)
			_ = enc.Encode(redactParams(obj))
			d.Stored = strings.TrimSuffix(b.String(), "\n")
		} else {
			d.Stored = fmt.Sprintf("<%d bytes, not JSON: not shown, as it may hold credentials>", len(d.Stored))
		}
	}
	return d
}

// DLQ is the dead-letter stream.
type DLQ struct {
	JS jetstream.JetStream
}

// Put stores a dead job. A job stored twice (a redelivery that failed the
// same way) is stored once.
func (d *DLQ) Put(ctx context.Context, dj *DeadJob) error {
	data, err := json.Marshal(dj)
	if err != nil {
		return fmt.Errorf("encode dead job %s: %w", dj.Job.ID, err)
	}
	action := dj.Job.Action
	if action == "" {
		action = ReasonUndecodable
	}
	msg := &nats.Msg{Subject: "dlq." + action, Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, "dead/"+dj.Job.ID+"/"+dj.Failed.Format(time.RFC3339Nano))
	if _, err := d.JS.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("store dead job %s: %w", dj.Job.ID, err)
	}
	return nil
}

// List returns every dead letter, oldest first.
func (d *DLQ) List(ctx context.Context) ([]DeadLetter, error) {
	s, err := d.JS.Stream(ctx, bus.DeadStream)
	if err != nil {
		return nil, fmt.Errorf("open DLQ: %w", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("open DLQ: %w", err)
	}
	var out []DeadLetter
	if info.State.Msgs == 0 {
		return out, nil
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		dl, err := d.get(ctx, s, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) || errors.Is(err, errNotJob) {
			continue // removed by a redrive, or a parked event
		}
		if err != nil {
			return nil, err
		}
		out = append(out, *dl)
	}
	return out, nil
}

// Get returns the dead letter with sequence seq.
func (d *DLQ) Get(ctx context.Context, seq uint64) (*DeadLetter, error) {
	s, err := d.JS.Stream(ctx, bus.DeadStream)
	if err != nil {
		return nil, fmt.Errorf("open DLQ: %w", err)
	}
	return d.get(ctx, s, seq)
}

func (d *DLQ) get(ctx context.Context, s jetstream.Stream, seq uint64) (*DeadLetter, error) {
	raw, err := s.GetMsg(ctx, seq)
	if err != nil {
		return nil, fmt.Errorf("dead letter %d: %w", seq, err)
	}
	if strings.HasPrefix(raw.Subject, bus.ParkedSubjectPrefix) {
		return nil, fmt.Errorf("DLQ entry %d: %w", seq, errNotJob)
	}
	dl := &DeadLetter{Seq: seq}
	if err := json.Unmarshal(raw.Data, &dl.DeadJob); err != nil {
		return nil, fmt.Errorf("dead letter %d: %w", seq, err)
	}
	return dl, nil
}

// ErrDoneSince is returned, wrapped, by Redrive for a dead letter whose job
// succeeded, or was cancelled, after it died: a copy of it, stored again,
// ran. The letter is removed and nothing runs again.
var ErrDoneSince = errors.New("the job succeeded, or was cancelled, since it died")

// Redrive puts the dead letter's job back on ACTIONS to run now, with a new
// retry horizon, and removes it from the DLQ. The job goes back under an id
// of its own, "<first id>/redrive/<seq>", with Redrives naming the first:
// the ledger keeps its record that the first is dead, so copies of it stay
// stopped, and nothing a worker still writes about it (a dead letter is
// stored before that record) can stop the redriven job. A job the ledger
// says succeeded or was cancelled since, under either id, is not put back
// (ErrDoneSince). A redrive that stored the job but could not remove the
// letter can be repeated: the copy is refused while the job is in ACTIONS,
// and stopped by its record after.
func (d *DLQ) Redrive(ctx context.Context, seq uint64, now time.Time) (*job.Job, error) {
	dl, err := d.Get(ctx, seq)
	if err != nil {
		return nil, err
	}
	if dl.Reason == ReasonUndecodable {
		return nil, fmt.Errorf("dead letter %d: %w", seq, ErrUndecodable)
	}
	j := dl.Job
	first := j.ID
	if j.Redrives != "" {
		first = j.Redrives
	}
	done, err := doneSince(ctx, d.JS, first, j.ID)
	if err != nil {
		return nil, fmt.Errorf("redrive dead letter %d: %w", seq, err)
	}
	if done {
		if err := d.remove(ctx, seq); err != nil {
			return nil, fmt.Errorf("dead letter %d: %w; not removed from the DLQ: %v", seq, ErrDoneSince, err)
		}
		return &j, fmt.Errorf("dead letter %d, job %s: %w", seq, first, ErrDoneSince)
	}
	j.ID = fmt.Sprintf("%s/redrive/%d", first, seq)
	j.Redrives = first
	j.Created = now.UTC()
	j.RunAt = time.Time{}
	if err := (&Queue{JS: d.JS}).Publish(ctx, &j); err != nil {
		return nil, fmt.Errorf("redrive dead letter %d: %w", seq, err)
	}
	if err := d.remove(ctx, seq); err != nil {
		return nil, fmt.Errorf("redrive dead letter %d: job requeued but not removed from the DLQ: %w", seq, err)
	}
	return &j, nil
}

// remove deletes DLQ entry seq.
func (d *DLQ) remove(ctx context.Context, seq uint64) error {
	s, err := d.JS.Stream(ctx, bus.DeadStream)
	if err != nil {
		return err
	}
	return s.DeleteMsg(ctx, seq)
}

// doneSince reports whether the ledger says one of the jobs ids succeeded
// or was cancelled. Its record of a death does not count.
func doneSince(ctx context.Context, js jetstream.JetStream, ids ...string) (bool, error) {
	kv, err := js.KeyValue(ctx, bus.DoneBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("open bucket %s: %w", bus.DoneBucket, err)
	}
	l := &KVLedger{done: kv}
	for _, id := range ids {
		rec, ok, err := l.Done(ctx, id)
		if err != nil {
			return false, err
		}
		if ok && !rec.Dead {
			return true, nil
		}
	}
	return false, nil
}

// Purge removes every dead letter and returns how many there were.
func (d *DLQ) Purge(ctx context.Context) (uint64, error) {
	s, err := d.JS.Stream(ctx, bus.DeadStream)
	if err != nil {
		return 0, fmt.Errorf("open DLQ: %w", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	if err := s.Purge(ctx); err != nil {
		return 0, fmt.Errorf("purge DLQ: %w", err)
	}
	return info.State.Msgs, nil
}

// Size returns how many dead jobs there are.
func (d *DLQ) Size(ctx context.Context) (uint64, error) {
	s, err := d.JS.Stream(ctx, bus.DeadStream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(bus.DeadSubjects))
	if err != nil {
		return 0, err
	}
	var n uint64
	for subject, c := range info.State.Subjects {
		if !strings.HasPrefix(subject, bus.ParkedSubjectPrefix) {
			n += c
		}
	}
	return n, nil
}

// errNotJob is a DLQ entry that is a parked event (see rules.Parking), not a dead job.
var errNotJob = errors.New("a parked event, not a dead job")

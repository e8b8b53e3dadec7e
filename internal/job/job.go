// Package job defines the unit of work that the rules engine produces and
// the worker pool carries out. It sits below both, so that neither has to
// import the other to speak of a job.
package job

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/comm100bot/bot/internal/event"
)

// Job is one action of one rule for one event.
type Job struct {
	// ID is deterministic (event id, rule, action index), so a job published
	// twice is one job.
	ID      string `json:"id"`
	EventID string `json:"event_id"`
	Rule    string `json:"rule"`
	// Index of the action within its rule.
	Index int `json:"index"`
	// Action is the catalogue name, such as "comm100.ticket.create".
	Action string `json:"action"`
	// Params are the rendered "with" values.
	Params map[string]any `json:"params"`
	// Key groups delayed jobs so that schedule.cancel can cancel them.
	Key string `json:"key,omitempty"`
	// RunAt is when a delayed job is due; zero runs it at once.
	RunAt time.Time `json:"run_at,omitzero"`
	// Priority is PriorityHigh, PriorityNormal (the default when empty) or
	// PriorityLow.
	Priority string `json:"priority,omitempty"`
	// DryRun logs the rendered job instead of carrying it out.
	DryRun bool `json:"dry_run,omitempty"`
	// Emit publishes a bot.action.completed event with the result once done.
	Emit bool `json:"emit,omitempty"`
	// Redrives is, on a job that bot dlq redrive put back, the id of the job
	// that went to the DLQ first; the redriven job has an id of its own.
	Redrives string `json:"redrives,omitempty"`
	// Created is when the rules engine made the job.
	Created time.Time `json:"created"`
}

// UnmarshalJSON decodes a job keeping the numbers of its params exact.
func (j *Job) UnmarshalJSON(data []byte) error {
	if j.fastUnmarshal(data) {
		return nil
	}
	return j.slowUnmarshal(data)
}

func (j *Job) slowUnmarshal(data []byte) error {
	type plain Job
	var raw struct {
		plain
		Params json.RawMessage `json:"params"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	p, err := event.DecodeObject(raw.Params)
	if err != nil {
		return fmt.Errorf("job params: %w", err)
	}
	*j = Job(raw.plain)
	j.Params = p
	return nil
}

// Decode decodes a job as the rules store it. It is the pool's decoder:
// one pass over the job, where json.Unmarshal would scan it once more to
// validate it first.
func Decode(data []byte) (*Job, error) {
	j := new(Job)
	if err := j.UnmarshalJSON(data); err != nil {
		return nil, err
	}
	return j, nil
}

// fastUnmarshal decodes a job as the bot writes it, in one pass: exactly
// its field names, each of its type. It reports false, having changed
// nothing, for anything else, which encoding/json then decodes.
func (j *Job) fastUnmarshal(data []byte) bool {
	m, escaped, ok := event.FastDecodeRecord(data)
	// Times are decoded from their raw bytes, which refuse escapes.
	if !ok || slices.Contains(escaped, "created") || slices.Contains(escaped, "run_at") {
		return false
	}
	var out Job
	for k, v := range m {
		var ok bool
		switch k {
		case "id":
			out.ID, ok = v.(string)
		case "event_id":
			out.EventID, ok = v.(string)
		case "rule":
			out.Rule, ok = v.(string)
		case "action":
			out.Action, ok = v.(string)
		case "key":
			out.Key, ok = v.(string)
		case "priority":
			out.Priority, ok = v.(string)
		case "index":
			var n int64
			n, ok = v.(int64)
			out.Index = int(n)
			ok = ok && int64(out.Index) == n
		case "dry_run":
			out.DryRun, ok = v.(bool)
		case "emit":
			out.Emit, ok = v.(bool)
		case "redrives":
			out.Redrives, ok = v.(string)
		case "params":
			switch p := v.(type) {
			case nil:
				ok = true
			case map[string]any:
				out.Params, ok = p, true
			}
		case "run_at":
			ok = unmarshalTime(&out.RunAt, v)
		case "created":
			ok = unmarshalTime(&out.Created, v)
		}
		if !ok {
			return false
		}
	}
	*j = out
	return true
}

func unmarshalTime(t *time.Time, v any) bool {
	s, ok := v.(string)
	return ok && t.UnmarshalText([]byte(s)) == nil
}

// Encode is the job as stored on the bus: what json.Marshal gives, in one
// pass.
func Encode(j *Job) ([]byte, error) {
	b := make([]byte, 0, 512)
	b = append(b, `{"id":`...)
	b = event.AppendString(b, j.ID)
	b = append(b, `,"event_id":`...)
	b = event.AppendString(b, j.EventID)
	b = append(b, `,"rule":`...)
	b = event.AppendString(b, j.Rule)
	b = append(b, `,"index":`...)
	b = strconv.AppendInt(b, int64(j.Index), 10)
	b = append(b, `,"action":`...)
	b = event.AppendString(b, j.Action)
	b = append(b, `,"params":`...)
	var ok bool
	if j.Params == nil {
		b = append(b, "null"...)
	} else if b, ok = event.AppendValue(b, j.Params); !ok {
		return json.Marshal(j)
	}
	if j.Key != "" {
		b = append(b, `,"key":`...)
		b = event.AppendString(b, j.Key)
	}
	if !j.RunAt.IsZero() {
		b = append(b, `,"run_at":`...)
		if b, ok = event.AppendTime(b, j.RunAt); !ok {
			return json.Marshal(j)
		}
	}
	if j.Priority != "" {
		b = append(b, `,"priority":`...)
		b = event.AppendString(b, j.Priority)
	}
	if j.DryRun {
		b = append(b, `,"dry_run":true`...)
	}
	if j.Emit {
		b = append(b, `,"emit":true`...)
	}
	if j.Redrives != "" {
		b = append(b, `,"redrives":`...)
		b = event.AppendString(b, j.Redrives)
	}
	b = append(b, `,"created":`...)
	if b, ok = event.AppendTime(b, j.Created); !ok {
		return json.Marshal(j)
	}
	return append(b, '}'), nil
}

// ID builds the deterministic job id of the index-th action of rule for an event.
func ID(eventID, rule string, index int) string {
	return fmt.Sprintf("%s/%s/%d", eventID, rule, index)
}

// RunSubjectPrefix starts the subjects of jobs that are due: a job runs from
// "actions.run.<action>.<token of its id>".
const RunSubjectPrefix = "actions.run."

// Comm100ActionPrefix starts the name of every action that calls the
// Comm100 API, and of no other: their jobs run from
// "actions.run.comm100.", where the pool takes them apart from the others
// (see actions.Pool).
const Comm100ActionPrefix = "comm100."

// RunSubject is the subject a job is published on to run now. Each job has a
// subject of its own, so that the stream can refuse a second copy while the
// first is stored (see actions.Queue).
func (j *Job) RunSubject() string { return RunSubjectOf(j.Action, Token(j.ID)) }

// RunSubjectOf is the run subject of the job with action and token (Token of
// its id).
func RunSubjectOf(action, token string) string {
	return RunSubjectPrefix + action + "." + token
}

// Token is a short digest of s, 20 hex characters, that fits in a subject
// token. A job's token names it in the stream (its Nats-Msg-Id and subjects)
// and in the ledger, where job ids run to a hundred characters.
func Token(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:10])
}

// Due is when the job was due: when it was made, or its RunAt if later. The
// retry horizon counts from here, so a job delayed by a day still gets its
// retries.
func (j *Job) Due() time.Time {
	if j.RunAt.After(j.Created) {
		return j.RunAt
	}
	return j.Created
}

// Priorities, highest first.
const (
	PriorityHigh   = "high"
	PriorityNormal = "normal"
	PriorityLow    = "low"
)

// Ranks is how many priorities there are: Rank returns 0 to Ranks-1.
const Ranks = 3

// Rank orders priorities for the limiter: 0 runs first. An empty or unknown
// priority is normal.
func Rank(priority string) int {
	switch strings.ToLower(priority) {
	case PriorityHigh:
		return 0
	case PriorityLow:
		return 2
	default:
		return 1
	}
}

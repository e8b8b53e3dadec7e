// Package job defines the unit of work that the rules engine produces and
// the worker pool carries out. It sits below both, so that neither has to
// import the other to speak of a job.
package job

import (
	"encoding/json"
	"fmt"
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
	// Created is when the rules engine made the job.
	Created time.Time `json:"created"`
}

// UnmarshalJSON decodes a job keeping the numbers of its params exact.
func (j *Job) UnmarshalJSON(data []byte) error {
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

// ID builds the deterministic job id of the index-th action of rule for an event.
func ID(eventID, rule string, index int) string {
	return fmt.Sprintf("%s/%s/%d", eventID, rule, index)
}

// RunSubjectPrefix starts the subjects of jobs that are due: a job runs from
// "actions.run.<action>".
const RunSubjectPrefix = "actions.run."

// RunSubject is the subject a job is published on to run now.
func (j *Job) RunSubject() string { return RunSubjectPrefix + j.Action }

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

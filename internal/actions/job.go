package actions

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/comm100bot/bot/internal/event"
)

// Job is one action of one rule for one event: the unit the pool carries out.
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
	// Priority is "high", "normal" (default) or "low".
	Priority string `json:"priority,omitempty"`
	// DryRun logs the rendered job instead of carrying it out.
	DryRun bool `json:"dry_run,omitempty"`
	// Emit publishes a bot.action.completed event with the result once done.
	Emit bool `json:"emit,omitempty"`
	// Created is when the rules engine made the job; the retry horizon counts from it.
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

// JobID builds the deterministic job id.
func JobID(eventID, rule string, index int) string {
	return fmt.Sprintf("%s/%s/%d", eventID, rule, index)
}

// Subjects on the ACTIONS stream.
const (
	RunSubjectPrefix = "actions.run."
)

// RunSubject is the subject a job is published on to run now.
func (j *Job) RunSubject() string { return RunSubjectPrefix + j.Action }

// logAttrs are the attributes every log line about the job carries.
func (j *Job) logAttrs() []any {
	return []any{"job_id", j.ID, "event_id", j.EventID, "rule", j.Rule, "action", j.Action}
}

// Priorities, highest first.
const (
	PriorityHigh   = "high"
	PriorityNormal = "normal"
	PriorityLow    = "low"
)

// priorityRank orders priorities: lower runs first.
func priorityRank(p string) int {
	switch strings.ToLower(p) {
	case PriorityHigh:
		return 0
	case PriorityLow:
		return 2
	default:
		return 1
	}
}

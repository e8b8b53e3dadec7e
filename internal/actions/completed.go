package actions

import (
	"time"

	"github.com/comm100bot/bot/internal/event"
	"github.com/comm100bot/bot/internal/job"
)

// completedEvent is the event a finished action emits, so that another rule
// can continue from its result: source "bot", type "action.completed". Its
// id is fixed by the job, so a repeat is dropped by the EVENTS stream.
func completedEvent(j *job.Job, res Result, at time.Time) *event.Event {
	if res == nil {
		res = Result{}
	}
	return &event.Event{
		ID:      "action.completed:" + j.ID,
		Source:  "bot",
		Type:    "action.completed",
		Time:    at.UTC(),
		Subject: j.ID,
		Data: map[string]any{
			"rule": j.Rule, "action": j.Action, "job_id": j.ID, "event_id": j.EventID,
			"key": j.Key, "result": map[string]any(res), "params": redactParams(j.Params),
		},
	}
}

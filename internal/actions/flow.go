package actions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/comm100bot/bot/internal/event"
)

// The jobID param is set by the pool for actions that need the job's own id.
const jobIDParam = "_job_id"

func flowActions() []*Action {
	return []*Action{
		{
			Name: "log",
			Doc:  "Writes a log line. Useful to try rules.",
			Params: []Param{
				{Name: "message", Type: textType, Required: true, Doc: "the text to log"},
				{Name: "level", Type: enumType(true, "debug", "info", "warn", "warning", "error"), Doc: "info (default)"},
			},
			Run: logAction,
		},
		{
			Name: "event.emit",
			Doc:  "Publishes a new event, for chaining rules. Result: event_id.",
			Params: []Param{
				{Name: "type", Type: textType, Required: true, Doc: "event type, such as followup.due"},
				{Name: "source", Type: textType, Doc: `event source; default "bot"`},
				{Name: "subject", Type: textType, Doc: "what the event is about"},
				{Name: "id", Type: textType, Doc: "event id; default derived from the job, so a repeat is dropped"},
				{Name: "data", Type: objectType, Doc: "the event's data"},
			},
			Run: emitEvent,
		},
		{
			Name: "schedule.cancel",
			Doc:  "Cancels every pending delayed action with the key. Result: cancelled.",
			Params: []Param{
				{Name: "key", Type: textType, Required: true, Doc: "the key given to the delayed actions"},
			},
			Run: func(ctx context.Context, rt *Runtime, p Params) (Result, error) {
				key, err := p.Require("key")
				if err != nil {
					return nil, err
				}
				n, err := rt.Schedules.Cancel(ctx, key, rt.cancelled)
				if err != nil {
					// The bot's NATS: it comes back.
					return nil, Transient(err)
				}
				rt.Log.Info("delayed actions cancelled", "key", key, "cancelled", n)
				return Result{"cancelled": n}, nil
			},
		},
	}
}

func logAction(ctx context.Context, rt *Runtime, p Params) (Result, error) {
	return nil, writeLog(ctx, rt.Log, p)
}

// writeLog writes a log job's line to log, at the job's level, with attrs.
// The pool calls it for a log job it carries out as it arrives, with the
// job's attributes (see Pool.quick).
func writeLog(ctx context.Context, log *slog.Logger, p Params, attrs ...any) error {
	var level slog.Level
	switch strings.ToLower(p.String("level")) {
	case "", "info":
		level = slog.LevelInfo
	case "debug":
		level = slog.LevelDebug
	case "warn", "warning":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		return Permanent(fmt.Errorf("param \"level\": unknown level %q", p.String("level")))
	}
	if log.Enabled(ctx, level) {
		log.Log(ctx, level, p.String("message"), attrs...)
	}
	return nil
}

func emitEvent(ctx context.Context, rt *Runtime, p Params) (Result, error) {
	typ, err := p.Require("type")
	if err != nil {
		return nil, err
	}
	data, err := p.Map("data")
	if err != nil {
		return nil, err
	}
	ev := &event.Event{
		ID:      p.String("id"),
		Source:  p.String("source"),
		Type:    typ,
		Time:    time.Now().UTC(),
		Subject: p.String("subject"),
		Data:    data,
	}
	if ev.Source == "" {
		ev.Source = "bot"
	}
	if ev.ID == "" {
		ev.ID = "emit:" + p.String(jobIDParam)
	}
	if err := ev.Validate(); err != nil {
		return nil, Permanent(err)
	}
	if _, err := rt.Events.Publish(ctx, ev); err != nil {
		err = fmt.Errorf("emit %s: %w", ev.Topic(), err)
		if errors.Is(err, nats.ErrMaxPayload) {
			return nil, Permanent(err)
		}
		// The bot's NATS: it comes back.
		return nil, Transient(err)
	}
	return Result{"event_id": ev.ID}, nil
}

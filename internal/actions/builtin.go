package actions

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/comm100bot/bot/internal/comm100"
)

func builtins() []*Action {
	return []*Action{
		{
			Name:    "comm100.ticket.create",
			Doc:     "Creates a ticket. Result: ticket_id.",
			Comm100: true,
			Params: []Param{
				{Name: "subject", Required: true, Doc: "ticket subject"},
				{Name: "message", Doc: "first message of the ticket (text)"},
				{Name: "message_type", Doc: `"text" (default) or "html"`},
				{Name: "priority", Doc: "urgent, high, normal (default) or low"},
				{Name: "status", Doc: "new (default), pendingInternal, pendingExternal, onHold or resolved"},
				{Name: "assignee_id", Doc: "agent id to assign to"},
				{Name: "department_id", Doc: "department id to assign to"},
				{Name: "channel_id", Doc: "ticket channel"},
				{Name: "contact_id", Doc: "contact or visitor id the ticket is about"},
				{Name: "contact_type", Doc: `"contact" or "visitor"`},
				{Name: "custom_fields", Doc: "object of custom field values"},
				{Name: "tag_ids", Doc: "list of tag ids"},
			},
			Run: createTicket,
		},
		{
			Name: "log",
			Doc:  "Writes a log line. Useful to try rules.",
			Params: []Param{
				{Name: "message", Required: true, Doc: "the text to log"},
				{Name: "level", Doc: "debug, info (default), warn or error"},
			},
			Run: logAction,
		},
	}
}

func createTicket(ctx context.Context, rt *Runtime, p Params) (Result, error) {
	subject, err := p.Require("subject")
	if err != nil {
		return nil, err
	}
	custom, err := p.Map("custom_fields")
	if err != nil {
		return nil, err
	}
	tags, err := p.Strings("tag_ids")
	if err != nil {
		return nil, err
	}
	t := comm100.NewTicket{
		Subject:              subject,
		Priority:             p.String("priority"),
		Status:               p.String("status"),
		AssigneeID:           p.String("assignee_id"),
		DepartmentAssigneeID: p.String("department_id"),
		ChannelID:            p.String("channel_id"),
		ContactOrVisitorID:   p.String("contact_id"),
		ContactOrVisitorType: p.String("contact_type"),
		CustomFields:         custom,
		TagIDs:               tags,
	}
	if msg := p.String("message"); msg != "" {
		typ := p.String("message_type")
		if typ == "" {
			typ = "text"
		}
		t.Message = &comm100.TicketMessage{Type: typ, Body: msg}
	}
	out, err := rt.Comm100.CreateTicket(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("create ticket: %w", err)
	}
	return Result{"ticket_id": string(out.ID)}, nil
}

func logAction(ctx context.Context, rt *Runtime, p Params) (Result, error) {
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
		return nil, Permanent(fmt.Errorf("param \"level\": unknown level %q", p.String("level")))
	}
	rt.Log.Log(ctx, level, p.String("message"))
	return nil, nil
}

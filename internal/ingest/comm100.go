package ingest

import (
	"fmt"
	"strings"
	"time"

	"github.com/comm100bot/bot/internal/event"
)

// liveChatTypes maps the "event" field of Comm100 live-chat webhooks to
// canonical event types.
var liveChatTypes = map[string]string{
	"chat_request":              "chat.requested",
	"chat_requested":            "chat.requested",
	"chat_started":              "chat.started",
	"chat_ended":                "chat.ended",
	"chat_wrapped_up":           "chat.wrapped_up",
	"chat_transferred":          "chat.transferred",
	"offline_message_submitted": "offline_message.submitted",
	"online":                    "agent.status_changed",
	"away":                      "agent.status_changed",
	"login":                     "agent.status_changed",
	"logout":                    "agent.status_changed",
}

// normalizeComm100 turns a Comm100 live-chat webhook body into the canonical
// event. received is used when the body carries no time of its own.
func normalizeComm100(source string, body []byte, received time.Time) (*event.Event, error) {
	raw, err := decodeJSON(body)
	if err != nil {
		return nil, err
	}
	name, _ := raw["event"].(string)
	if name == "" {
		return nil, fmt.Errorf(`body has no "event" field; is this a Comm100 live-chat webhook?`)
	}
	typ, ok := liveChatTypes[name]
	if !ok {
		return nil, fmt.Errorf("unknown Comm100 event %q", name)
	}
	data, _ := normalizeValue("", raw).(map[string]any)
	delete(data, "event")

	ev := &event.Event{Source: source, Type: typ, Time: received.UTC(), Data: data}
	chat, _ := data["chat"].(map[string]any)
	if chat != nil {
		normalizeChat(chat)
	}
	visitor, _ := data["visitor"].(map[string]any)

	chatID := firstString(chat, "id")
	if chatID == "" {
		chatID = firstString(data, "chat_id")
	}
	if chatID == "" {
		chatID = firstString(visitor, "chat_id")
	}

	switch typ {
	case "chat.requested", "chat.started", "chat.ended", "chat.wrapped_up":
		if chatID == "" {
			return nil, fmt.Errorf("Comm100 %s webhook has no chat id", name)
		}
		ev.ID = typ + ":" + chatID
		ev.Subject = chatID
		data["chat_id"] = chatID
	case "chat.transferred":
		// A chat can be transferred many times: the body tells them apart.
		ev.ID = typ + ":" + chatID + ":" + bodyHash(body)
		ev.Subject = chatID
	case "offline_message.submitted":
		om, _ := data["offline_message"].(map[string]any)
		id := firstString(om, "id")
		if id == "" {
			return nil, fmt.Errorf("Comm100 %s webhook has no offline_message.id", name)
		}
		ev.ID = typ + ":" + id
		ev.Subject = id
		if t := parseTime(firstString(om, "time")); !t.IsZero() {
			ev.Time = t
		}
	case "agent.status_changed":
		op := firstString(data, "operator_id")
		data["status"] = name
		// The body has no time or id: a repeat within the same second is the same delivery.
		ev.ID = fmt.Sprintf("%s:%s:%s:%d", typ, op, name, received.Unix())
		ev.Subject = op
	}
	switch typ {
	case "chat.ended":
		if t := parseTime(firstString(chat, "end_time")); !t.IsZero() {
			ev.Time = t
		}
	case "chat.wrapped_up":
		if w, ok := data["wrapup"].(map[string]any); ok {
			if t := parseTime(firstString(w, "time")); !t.IsZero() {
				ev.Time = t
			}
		}
	}
	return ev, nil
}

// normalizeChat splits the transcript into lines and reads the waiting time.
func normalizeChat(chat map[string]any) {
	if tr, ok := chat["chat_transcript"].(string); ok {
		lines := []any{}
		for _, l := range strings.Split(tr, "⊙") {
			if l = strings.TrimSpace(l); l != "" {
				lines = append(lines, l)
			}
		}
		chat["transcript"] = lines
		delete(chat, "chat_transcript")
	}
	if w, ok := chat["waiting_time"].(string); ok {
		if n, ok := parseSeconds(w); ok {
			chat["waiting_time"] = n
		}
	}
	if r, ok := chat["rating"].(string); ok {
		var n int64
		if _, err := fmt.Sscan(r, &n); err == nil {
			chat["rating"] = n
		}
	}
}

func firstString(m map[string]any, key string) string {
	if m == nil {
		return ""
	}
	switch v := m[key].(type) {
	case string:
		return v
	case int64:
		return fmt.Sprint(v)
	case float64:
		return fmt.Sprint(v)
	}
	return ""
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Unix() <= 0 {
		return time.Time{}
	}
	return t.UTC()
}

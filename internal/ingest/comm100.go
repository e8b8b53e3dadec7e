package ingest

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/comm100bot/bot/internal/event"
)

// liveChatTypes maps the "event" field of Comm100 live-chat webhooks to
// canonical event types (the knowledge base's "Reference for Webhook event"
// pages; see internal/comm100/SOURCES.md).
var liveChatTypes = map[string]string{
	"chat_request":              "chat.requested",
	"chat_requested":            "chat.requested",
	"chat_started":              "chat.started",
	"chat_ended":                "chat.ended",
	"chat_wrapped_up":           "chat.wrapped_up",
	"chat_wraped_up":            "chat.wrapped_up", // a spelling of Comm100's design notes
	"chat_transferred":          "chat.transferred",
	"offline_message_submitted": "offline_message.submitted",
	"online":                    "agent.status_changed",
	"away":                      "agent.status_changed",
	"login":                     "agent.status_changed",
	"logout":                    "agent.status_changed",
}

// comm100Shape is which of Comm100's webhooks a body is (COMM100.md §5).
type comm100Shape int

const (
	shapeUnknown       comm100Shape = iota
	shapeLiveChat                   // §5.1: snake_case, "event": "chat_ended"
	shapeTicketTrigger              // §5.2: PascalCase, "TriggerId", "TicketInfo" (any letter case)
	shapeChatbot                    // §5.3: camelCase, "eventType", "chatId" (intent webhook)
	shapeBotEngine                  // third-party bot engine: "event": "questionAsked", "chatId"
	shapeEnvelope                   // §5.4: "event", "eventId", "payload"
)

// botEngineEvents are the events Comm100 posts to a third-party bot engine
// (Comm100's "Third-Party Bot Engine" design and the knowledge base's "How to
// Connect My Own Bot to Comm100 Live Chat Using Webhook"). They share the
// "event" key with the live-chat webhooks, whose names are snake_case.
var botEngineEvents = []string{"questionAsked", "intentClicked", "locationShared", "formSubmitted", "chatJoined"}

// comm100ShapeOf tells the webhooks apart by the keys they carry.
func comm100ShapeOf(raw map[string]any) comm100Shape {
	event, hasEvent := raw["event"].(string)
	_, hasEventID := raw["eventId"]
	_, hasPayload := raw["payload"]
	hasTicket := hasKeyFold(raw, "TicketInfo")
	hasTrigger := hasKeyFold(raw, "TriggerId")
	_, hasEventType := raw["eventType"].(string)
	_, hasChatID := raw["chatId"]
	_, hasBotID := raw["botId"]
	switch {
	case hasEvent && (hasEventID || hasPayload):
		return shapeEnvelope
	case hasTicket || hasTrigger:
		return shapeTicketTrigger
	case hasEventType && (hasChatID || hasBotID):
		return shapeChatbot
	case hasEvent && slices.Contains(botEngineEvents, event) && (hasChatID || hasBotID):
		return shapeBotEngine
	case hasEvent:
		return shapeLiveChat
	}
	return shapeUnknown
}

// hasKeyFold reports whether m has key in any letter case.
func hasKeyFold(m map[string]any, key string) bool {
	for k := range m {
		if strings.EqualFold(k, key) {
			return true
		}
	}
	return false
}

// newComm100Decoder decodes every Comm100 webhook shape. auth (the shared-
// secret header) is checked on the shapes that can carry custom headers:
// ticket triggers, chatbot and classic webhooks, not live-chat ones.
func newComm100Decoder(name string, auth []verifier) decodeFunc {
	return func(r *http.Request, body []byte, received time.Time) (*event.Event, error) {
		raw, err := decodeJSON(body)
		if err != nil {
			return nil, err
		}
		shape := comm100ShapeOf(raw)
		if shape != shapeLiveChat && shape != shapeUnknown {
			for _, v := range auth {
				if err := v.verify(r.Header, body, received); err != nil {
					return nil, err
				}
			}
		}
		return normalizeComm100Raw(name, shape, raw, body, received)
	}
}

// normalizeComm100 turns any Comm100 webhook body into the canonical event.
// received is used when the body carries no time of its own.
func normalizeComm100(source string, body []byte, received time.Time) (*event.Event, error) {
	raw, err := decodeJSON(body)
	if err != nil {
		return nil, err
	}
	return normalizeComm100Raw(source, comm100ShapeOf(raw), raw, body, received)
}

func normalizeComm100Raw(source string, shape comm100Shape, raw map[string]any, body []byte, received time.Time) (*event.Event, error) {
	switch shape {
	case shapeLiveChat:
		return normalizeLiveChat(source, raw, body, received)
	case shapeTicketTrigger:
		return normalizeTicketTrigger(source, raw, body, received)
	case shapeChatbot:
		return normalizeChatbot(source, raw, "eventType", body, received)
	case shapeBotEngine:
		return normalizeChatbot(source, raw, "event", body, received)
	case shapeEnvelope:
		return normalizeEnvelope(source, raw, received)
	}
	return nil, fmt.Errorf(`body is not a Comm100 webhook: want "event" (live chat, or a bot engine's "questionAsked"), "TicketInfo" (ticket trigger), "eventType" (chatbot) or "eventId" (classic)`)
}

// normalizeLiveChat handles the live-chat webhooks (§5.1): snake_case, no
// event id, so the id is built from the event and the chat or message id.
func normalizeLiveChat(source string, raw map[string]any, body []byte, received time.Time) (*event.Event, error) {
	name, _ := raw["event"].(string)
	typ, ok := liveChatTypes[name]
	if !ok {
		return nil, fmt.Errorf("unknown Comm100 event %s", event.Excerpt(name))
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
		if chatID == "" {
			return nil, fmt.Errorf("Comm100 %s webhook has no chat id", name)
		}
		// A chat can be transferred many times: the body tells them apart.
		ev.ID = typ + ":" + chatID + ":" + bodyHash(body)
		ev.Subject = chatID
		data["chat_id"] = chatID
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
		if op == "" {
			return nil, fmt.Errorf("Comm100 %s webhook has no operator_id", name)
		}
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

// normalizeTicketTrigger handles ticket-trigger webhooks (§5.2): PascalCase
// keys become camelCase, the type is "ticket.<trigger name>" in snake_case
// (the payload does not say which condition fired), and since a trigger can
// fire many times for one ticket, the body tells deliveries apart. Name the
// triggers well: the name is what rules match on.
func normalizeTicketTrigger(source string, raw map[string]any, body []byte, received time.Time) (*event.Event, error) {
	data, _ := normalizeValue("", camelKeys(raw)).(map[string]any)
	// "TicketInfo" comes in any letter case ("ticketInfo" in the content
	// review webhook); so may the other top-level names.
	for _, k := range []string{"siteId", "triggerId", "triggerName", "channelId", "channelAccountId", "ticketInfo"} {
		foldKey(data, k)
	}
	// "Ticket reply received" → ticket.reply_received, not ticket.ticket_reply_received.
	trigger := strings.TrimPrefix(snakeCase(firstString(data, "triggerName")), "ticket_")
	if trigger == "" {
		trigger = "triggered"
	}
	ticket, _ := data["ticketInfo"].(map[string]any)
	ticketID := firstString(ticket, "id")
	if ticketID == "" {
		return nil, fmt.Errorf("Comm100 ticket-trigger webhook has no TicketInfo.Id")
	}
	typ := "ticket." + trigger
	return &event.Event{
		ID:      typ + ":" + ticketID + ":" + bodyHash(body),
		Source:  source,
		Type:    typ,
		Time:    received.UTC(),
		Subject: ticketID,
		Data:    data,
	}, nil
}

// foldKey renames the key of m that equals key in another letter case to key,
// unless m has key already.
func foldKey(m map[string]any, key string) {
	if _, ok := m[key]; ok {
		return
	}
	for _, k := range sortedKeys(m) {
		if strings.EqualFold(k, key) {
			m[key] = m[k]
			delete(m, k)
			return
		}
	}
}

// normalizeChatbot handles chatbot webhooks (§5.3), whose kind is under
// "eventType", and the third-party bot-engine webhook, whose kind is under
// "event": type "chatbot.<kind>" in snake_case ("chatbot.question_asked" for
// both), subject the chat id.
func normalizeChatbot(source string, raw map[string]any, kindKey string, body []byte, received time.Time) (*event.Event, error) {
	data, _ := normalizeValue("", raw).(map[string]any)
	kind := snakeCase(firstString(data, kindKey))
	if kind == "" {
		return nil, fmt.Errorf("Comm100 chatbot webhook has no %s", kindKey)
	}
	chatID := firstString(data, "chatId")
	typ := "chatbot." + kind
	return &event.Event{
		ID:      typ + ":" + chatID + ":" + bodyHash(body),
		Source:  source,
		Type:    typ,
		Time:    received.UTC(),
		Subject: chatID,
		Data:    data,
	}, nil
}

// comm100Reply answers a third-party bot-engine webhook the way its sender
// waits for: {"id": <GUID>, "answer": [...]} (Comm100's "Third-Party Bot
// Engine" design), with 200. The bot stores the event for the rules and
// gives no answer of its own: the answer list is empty, so the visitor sees
// nothing from the bot. The id is a GUID made from the event id, the same
// for a repeat; event_id and duplicate say what the bot did. Every other
// webhook gets the usual answer.
func comm100Reply(ev *event.Event, usual map[string]any) (int, any, bool) {
	kind, _ := ev.Data["event"].(string)
	if !strings.HasPrefix(ev.Type, "chatbot.") || !slices.Contains(botEngineEvents, kind) {
		return 0, nil, false
	}
	out := map[string]any{"id": guidFrom(ev.ID), "answer": []any{}, "event_id": ev.ID}
	if usual["duplicate"] == true {
		out["duplicate"] = true
	}
	return http.StatusOK, out, true
}

// guidFrom makes a GUID (version 5 layout) from s, the same for the same s.
func guidFrom(s string) string {
	sum := sha256.Sum256([]byte("comm100bot:" + s))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// normalizeEnvelope handles classic-platform webhooks (§5.4), which carry
// their own eventId (Comm100 retries them for days, so it is the dedup key):
// "ticket.AgentReplied" becomes type "ticket.agent_replied", the payload the data.
func normalizeEnvelope(source string, raw map[string]any, received time.Time) (*event.Event, error) {
	name, _ := raw["event"].(string)
	typ := dottedType(name)
	if typ == "" {
		return nil, fmt.Errorf("Comm100 classic webhook event %s is not an event name", event.Excerpt(name))
	}
	id := ""
	switch v := raw["eventId"].(type) {
	case string:
		id = strings.TrimSpace(v)
	case interface{ String() string }: // json.Number
		id = v.String()
	}
	if id == "" {
		return nil, fmt.Errorf("Comm100 classic webhook has no eventId")
	}
	ev := &event.Event{ID: id, Source: source, Type: typ, Time: received.UTC(), Data: map[string]any{}}
	if p := raw["payload"]; p != nil {
		ev.Data = asObject(normalizeValue("", camelKeys(p)))
	}
	ev.Subject = firstString(ev.Data, "id")
	if t := eventTime(raw["eventTime"]); !t.IsZero() {
		ev.Time = t
	}
	return ev, nil
}

// eventTime reads a time sent as "/Date(ms)/", RFC 3339 or Unix seconds or
// milliseconds; zero if it is none of them.
func eventTime(v any) time.Time {
	switch x := v.(type) {
	case string:
		if t, ok := parseMSDate(x); ok {
			return t
		}
		if t := parseTime(x); !t.IsZero() {
			return t
		}
		if n, err := strconv.ParseInt(x, 10, 64); err == nil {
			return unixTime(n)
		}
	case interface{ Int64() (int64, error) }: // json.Number
		if n, err := x.Int64(); err == nil {
			return unixTime(n)
		}
	}
	return time.Time{}
}

// unixTime reads seconds or, when too large for seconds, milliseconds, up
// to the end of year 9999 (the last time RFC 3339 can write).
func unixTime(n int64) time.Time {
	if n <= 0 || n > 253402300799999 {
		return time.Time{}
	}
	if n > 1e11 {
		return time.UnixMilli(n).UTC()
	}
	return time.Unix(n, 0).UTC()
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

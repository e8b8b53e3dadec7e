package comm100

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// The shapes below follow SOURCES.md (next to this file): the Ticket,
// Message and Note pages of the v4 reference and the body Comm100's own API
// tests create tickets with.

// ZeroGUID is what Comm100 sends and takes for "no such thing" in a GUID
// field (ticket-trigger payloads, its own API tests).
const ZeroGUID = "00000000-0000-0000-0000-000000000000"

// DefaultTicketChannel is the channel of a ticket an agent opens by hand, as
// Comm100's own API tests create tickets.
const DefaultTicketChannel = "Internal"

// Ticket is a Comm100 ticket as the ticketing API returns it. Its id is an
// integer on v4.
type Ticket struct {
	ID                   ID             `json:"id"`
	Subject              string         `json:"subject"`
	Priority             string         `json:"priority,omitempty"`
	Status               string         `json:"status,omitempty"`
	AssigneeType         string         `json:"assigneeType,omitempty"`
	AssigneeID           string         `json:"assigneeId,omitempty"`
	DepartmentAssigneeID string         `json:"departmentAssigneeId,omitempty"`
	ChannelID            string         `json:"channelId,omitempty"`
	ContactOrVisitorID   string         `json:"contactOrVisitorId,omitempty"`
	ContactOrVisitorType string         `json:"contactOrVisitorType,omitempty"`
	CustomFields         map[string]any `json:"customFields,omitempty"`
	TagIDs               []string       `json:"tagIds,omitempty"`
	CreatedTime          time.Time      `json:"createdTime,omitzero"`
	LastUpdatedTime      time.Time      `json:"lastUpdatedTime,omitzero"`
}

// NewTicket is a ticket to create. Subject is required. It goes out as the
// body Comm100's API tests send: the first message inside "messages", the
// channel next to it, "customFields" keyed by field id and "tagIds".
type NewTicket struct {
	Subject  string
	Priority string // urgent, high, normal, low; empty: the server's default
	Status   string // new, pendingInternal, pendingExternal, onHold, resolved
	// ChannelID of the ticket and of its first message. Default "Internal".
	ChannelID string
	// ContactOrVisitorID the ticket is about. Default ZeroGUID (none).
	ContactOrVisitorID   string
	ContactOrVisitorType string // contact, visitor, ...; empty: left out
	// AssigneeID, with AssigneeType ("agent", the default, or "chatbot").
	AssigneeID           string
	AssigneeType         string
	DepartmentAssigneeID string
	// CustomFields keyed by the field's id (a GUID), never by its name.
	CustomFields map[string]any
	TagIDs       []string
	// Message is the first message, sent by an agent; nil sends none.
	Message *TicketMessage
}

// TicketMessage is the first message of a new ticket.
type TicketMessage struct {
	Type string // "text" (default) or "html"
	Body string
}

// wireMessage is a message as the ticketing API takes it in "messages" and
// at POST ticketing/messages.
type wireMessage struct {
	TicketID    json.RawMessage `json:"ticketId,omitempty"`
	SentByType  string          `json:"sentByType"`
	ChannelID   string          `json:"channelId,omitempty"`
	Type        string          `json:"type"`
	Body        string          `json:"body"`
	Attachments []any           `json:"attachments"`
}

// wireTicket is the body of POST ticketing/tickets.
type wireTicket struct {
	Subject              string         `json:"subject"`
	Priority             string         `json:"priority,omitempty"`
	Status               string         `json:"status,omitempty"`
	ChannelID            string         `json:"channelId"`
	ContactOrVisitorID   string         `json:"contactOrVisitorId"`
	ContactOrVisitorType string         `json:"contactOrVisitorType,omitempty"`
	CustomFields         map[string]any `json:"customFields"`
	TagIDs               []string       `json:"tagIds"`
	AssigneeType         string         `json:"assigneeType,omitempty"`
	AssigneeID           string         `json:"assigneeId,omitempty"`
	DepartmentAssigneeID string         `json:"departmentAssigneeId,omitempty"`
	Messages             []wireMessage  `json:"messages,omitempty"`
}

// wire builds the request body; b64 sends the message body as a
// data:text/plain;base64 URL.
func (t NewTicket) wire(b64 bool) wireTicket {
	w := wireTicket{
		Subject:              t.Subject,
		Priority:             t.Priority,
		Status:               t.Status,
		ChannelID:            t.ChannelID,
		ContactOrVisitorID:   t.ContactOrVisitorID,
		ContactOrVisitorType: t.ContactOrVisitorType,
		CustomFields:         t.CustomFields,
		TagIDs:               t.TagIDs,
		DepartmentAssigneeID: t.DepartmentAssigneeID,
	}
	if w.ChannelID == "" {
		w.ChannelID = DefaultTicketChannel
	}
	if w.ContactOrVisitorID == "" {
		w.ContactOrVisitorID = ZeroGUID
	}
	if w.CustomFields == nil {
		w.CustomFields = map[string]any{}
	}
	if w.TagIDs == nil {
		w.TagIDs = []string{}
	}
	w.AssigneeID, w.AssigneeType = assignee(t.AssigneeID, t.AssigneeType)
	if t.Message != nil {
		w.Messages = []wireMessage{{
			SentByType:  "agent",
			ChannelID:   w.ChannelID,
			Type:        messageType(t.Message.Type),
			Body:        encodeBody(t.Message.Body, b64),
			Attachments: []any{},
		}}
	}
	return w
}

// assignee gives the assignee id and its type: "agent" unless told
// otherwise, and no type without an id.
func assignee(id, typ string) (string, string) {
	if id == "" {
		return "", ""
	}
	if typ == "" {
		typ = "agent"
	}
	return id, typ
}

func messageType(t string) string {
	if t == "" {
		return "text"
	}
	return t
}

// bodyDataURL is the prefix the Message and Note pages give for a body sent
// in base64, for when Comm100's firewall blocks the plain text.
const bodyDataURL = "data:text/plain;base64,"

func encodeBody(s string, b64 bool) string {
	if !b64 {
		return s
	}
	return bodyDataURL + base64.StdEncoding.EncodeToString([]byte(s))
}

// DecodeBody turns a body sent as data:text/plain;base64 back into text;
// any other body is returned as it is.
func DecodeBody(s string) (string, error) {
	rest, ok := strings.CutPrefix(s, bodyDataURL)
	if !ok {
		return s, nil
	}
	b, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return "", fmt.Errorf("body: not valid base64 after %q: %w", bodyDataURL, err)
	}
	return string(b), nil
}

// TicketUpdate is the body of a ticket update. Empty fields are left out, so
// they keep their value if the server treats PUT as partial (which Comm100
// does not document). A non-nil empty TagIDs clears the tags.
type TicketUpdate struct {
	Subject              string
	Priority             string
	Status               string
	AssigneeID           string
	AssigneeType         string // "agent" (default with an AssigneeID) or "chatbot"
	DepartmentAssigneeID string
	CustomFields         map[string]any // keyed by field id
	TagIDs               []string
}

// MarshalJSON sends the fields set, with assigneeType next to assigneeId.
func (u TicketUpdate) MarshalJSON() ([]byte, error) {
	id, typ := assignee(u.AssigneeID, u.AssigneeType)
	return json.Marshal(struct {
		Subject              string         `json:"subject,omitempty"`
		Priority             string         `json:"priority,omitempty"`
		Status               string         `json:"status,omitempty"`
		AssigneeType         string         `json:"assigneeType,omitempty"`
		AssigneeID           string         `json:"assigneeId,omitempty"`
		DepartmentAssigneeID string         `json:"departmentAssigneeId,omitempty"`
		CustomFields         map[string]any `json:"customFields,omitempty"`
		TagIDs               []string       `json:"tagIds,omitzero"`
	}{u.Subject, u.Priority, u.Status, typ, id, u.DepartmentAssigneeID, u.CustomFields, u.TagIDs})
}

// Message is a message on a ticket.
type Message struct {
	ID         ID        `json:"id"`
	TicketID   ID        `json:"ticketId"`
	SentByType string    `json:"sentByType,omitempty"`
	SentByID   ID        `json:"sentById,omitempty"`
	ChannelID  string    `json:"channelId,omitempty"`
	Type       string    `json:"type,omitempty"`
	Body       string    `json:"body"`
	Time       time.Time `json:"time,omitzero"`
}

// NewMessage is a reply by an agent on a ticket. TicketID and Body are
// required.
type NewMessage struct {
	TicketID  ID
	Type      string // "text" (default) or "html"
	Body      string
	ChannelID string // empty: left out, for Comm100 to choose
}

func (m NewMessage) wire(b64 bool) wireMessage {
	return wireMessage{
		TicketID:    m.TicketID.jsonValue(),
		SentByType:  "agent",
		ChannelID:   m.ChannelID,
		Type:        messageType(m.Type),
		Body:        encodeBody(m.Body, b64),
		Attachments: []any{},
	}
}

// Note is an internal note on a ticket.
type Note struct {
	ID          ID        `json:"id"`
	TicketID    ID        `json:"ticketId"`
	AgentID     ID        `json:"agentId,omitempty"`
	Text        string    `json:"text"`
	CreatedTime time.Time `json:"createdTime,omitzero"`
}

// NewNote is the body of an internal note. TicketID and Text are required.
type NewNote struct {
	TicketID ID
	Text     string
}

type wireNote struct {
	TicketID json.RawMessage `json:"ticketId"`
	Text     string          `json:"text"`
}

func (n NewNote) wire(b64 bool) wireNote {
	return wireNote{TicketID: n.TicketID.jsonValue(), Text: encodeBody(n.Text, b64)}
}

// CreateTicket calls POST ticketing/tickets.
func (c *Client) CreateTicket(ctx context.Context, t NewTicket) (*Ticket, error) {
	if strings.TrimSpace(t.Subject) == "" {
		return nil, fmt.Errorf("comm100 create ticket: subject is empty")
	}
	var out Ticket
	if err := c.Do(ctx, http.MethodPost, "ticketing/tickets", nil, t.wire(c.cfg.Base64Bodies), &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Ticket calls GET ticketing/tickets/{id}.
func (c *Client) Ticket(ctx context.Context, id string) (*Ticket, error) {
	seg, err := pathID("ticket", id)
	if err != nil {
		return nil, err
	}
	var out Ticket
	if err := c.Do(ctx, http.MethodGet, "ticketing/tickets/"+seg, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateTicket calls PUT ticketing/tickets/{id}.
func (c *Client) UpdateTicket(ctx context.Context, id string, u TicketUpdate) (*Ticket, error) {
	seg, err := pathID("ticket", id)
	if err != nil {
		return nil, err
	}
	var out Ticket
	if err := c.Do(ctx, http.MethodPut, "ticketing/tickets/"+seg, nil, u, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ReplyTicket calls POST ticketing/messages.
func (c *Client) ReplyTicket(ctx context.Context, m NewMessage) (*Message, error) {
	if m.TicketID == "" {
		return nil, fmt.Errorf("comm100 reply on ticket: ticket id is empty")
	}
	var out Message
	if err := c.Do(ctx, http.MethodPost, "ticketing/messages", nil, m.wire(c.cfg.Base64Bodies), &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AddTicketNote calls POST ticketing/notes.
func (c *Client) AddTicketNote(ctx context.Context, n NewNote) (*Note, error) {
	if n.TicketID == "" {
		return nil, fmt.Errorf("comm100 note on ticket: ticket id is empty")
	}
	var out Note
	if err := c.Do(ctx, http.MethodPost, "ticketing/notes", nil, n.wire(c.cfg.Base64Bodies), &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// TicketField is a ticket field, system or custom. Tickets carry custom
// field values keyed by the field's ID.
type TicketField struct {
	ID         ID     `json:"id"`
	Name       string `json:"name"`
	SystemName string `json:"systemName,omitempty"`
	Type       string `json:"type,omitempty"`
	IsSystem   bool   `json:"isSystem"`
	IsRequired bool   `json:"isRequired,omitempty"`
}

// TicketFields calls GET ticketing/fields: every ticket field (a bare array).
func (c *Client) TicketFields(ctx context.Context) ([]TicketField, error) {
	return collect(list[TicketField](ctx, c, "ticketing/fields", nil, "fields"))
}

package comm100

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Ticket is a Comm100 ticket as the ticketing API returns it. Its id is an
// integer on v4.
type Ticket struct {
	ID                   ID             `json:"id"`
	Subject              string         `json:"subject"`
	Priority             string         `json:"priority,omitempty"`
	Status               string         `json:"status,omitempty"`
	AssigneeID           string         `json:"assigneeId,omitempty"`
	DepartmentAssigneeID string         `json:"departmentAssigneeId,omitempty"`
	ChannelID            string         `json:"channelId,omitempty"`
	ContactOrVisitorID   string         `json:"contactOrVisitorId,omitempty"`
	ContactOrVisitorType string         `json:"contactOrVisitorType,omitempty"`
	CustomFields         map[string]any `json:"customFields,omitempty"`
	TagIDs               []string       `json:"tagIds,omitempty"`
	CreatedTime          time.Time      `json:"createdTime,omitzero"`
	LastActivityTime     time.Time      `json:"lastActivityTime,omitzero"`
}

// NewTicket is the body of a ticket creation. Subject is required.
type NewTicket struct {
	Subject              string         `json:"subject"`
	Priority             string         `json:"priority,omitempty"` // urgent, high, normal, low
	Status               string         `json:"status,omitempty"`   // new, pendingInternal, pendingExternal, onHold, resolved
	AssigneeID           string         `json:"assigneeId,omitempty"`
	DepartmentAssigneeID string         `json:"departmentAssigneeId,omitempty"`
	ChannelID            string         `json:"channelId,omitempty"`
	ContactOrVisitorID   string         `json:"contactOrVisitorId,omitempty"`
	ContactOrVisitorType string         `json:"contactOrVisitorType,omitempty"`
	CustomFields         map[string]any `json:"customFields,omitempty"`
	TagIDs               []string       `json:"tagIds,omitempty"`
	Message              *TicketMessage `json:"message,omitempty"`
}

// TicketMessage is the first message of a new ticket.
type TicketMessage struct {
	Type string `json:"type,omitempty"` // "text" or "html"
	Body string `json:"body"`
}

// TicketUpdate is the body of a ticket update. Empty fields are left out, so
// they keep their value if the server treats PUT as partial (which Comm100
// does not document). A non-nil empty TagIDs clears the tags.
type TicketUpdate struct {
	Subject              string         `json:"subject,omitempty"`
	Priority             string         `json:"priority,omitempty"`
	Status               string         `json:"status,omitempty"`
	AssigneeID           string         `json:"assigneeId,omitempty"`
	DepartmentAssigneeID string         `json:"departmentAssigneeId,omitempty"`
	CustomFields         map[string]any `json:"customFields,omitempty"`
	TagIDs               []string       `json:"tagIds,omitzero"`
}

// Message is a reply on a ticket.
type Message struct {
	ID          ID        `json:"id"`
	TicketID    ID        `json:"ticketId"`
	Type        string    `json:"type,omitempty"`
	Body        string    `json:"body"`
	CreatedTime time.Time `json:"createdTime,omitzero"`
}

// NewMessage is the body of a ticket reply. TicketID and Body are required.
type NewMessage struct {
	TicketID ID
	Type     string // "text" (default) or "html"
	Body     string
}

// MarshalJSON sends the ticket id as the integer the API expects.
func (m NewMessage) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		TicketID json.RawMessage `json:"ticketId"`
		Type     string          `json:"type,omitempty"`
		Body     string          `json:"body"`
	}{m.TicketID.jsonValue(), m.Type, m.Body})
}

// Note is an internal note on a ticket.
type Note struct {
	ID          ID        `json:"id"`
	TicketID    ID        `json:"ticketId"`
	Text        string    `json:"text"`
	CreatedTime time.Time `json:"createdTime,omitzero"`
}

// NewNote is the body of an internal note. TicketID and Text are required.
type NewNote struct {
	TicketID ID
	Text     string
}

// MarshalJSON sends the ticket id as the integer the API expects.
func (n NewNote) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		TicketID json.RawMessage `json:"ticketId"`
		Text     string          `json:"text"`
	}{n.TicketID.jsonValue(), n.Text})
}

// CreateTicket calls POST ticketing/tickets.
func (c *Client) CreateTicket(ctx context.Context, t NewTicket) (*Ticket, error) {
	var out Ticket
	if err := c.Do(ctx, http.MethodPost, "ticketing/tickets", nil, t, &out); err != nil {
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
	if err := c.Do(ctx, http.MethodPost, "ticketing/messages", nil, m, &out); err != nil {
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
	if err := c.Do(ctx, http.MethodPost, "ticketing/notes", nil, n, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

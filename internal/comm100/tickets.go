package comm100

import (
	"context"
	"net/http"
)

// Ticket is a Comm100 ticket as the ticketing API returns it.
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
}

// NewTicket is the body of a ticket creation.
type NewTicket struct {
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
	Message              *TicketMessage `json:"message,omitempty"`
}

// TicketMessage is the first message of a new ticket, or a reply.
type TicketMessage struct {
	Type string `json:"type,omitempty"` // "text" or "html"
	Body string `json:"body"`
}

// CreateTicket calls POST ticketing/tickets.
func (c *Client) CreateTicket(ctx context.Context, t NewTicket) (*Ticket, error) {
	var out Ticket
	if err := c.Do(ctx, http.MethodPost, "ticketing/tickets", nil, t, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

package comm100

import (
	"context"
	"net/http"
	"time"
)

// OfflineMessage is a message a visitor left while no agent was online.
type OfflineMessage struct {
	ID           ID             `json:"id"`
	VisitorID    ID             `json:"visitorId,omitempty"`
	CampaignID   ID             `json:"campaignId,omitempty"`
	DepartmentID ID             `json:"departmentId,omitempty"`
	TicketID     ID             `json:"ticketId,omitempty"`
	Name         string         `json:"name,omitempty"`
	Email        string         `json:"email,omitempty"`
	Phone        string         `json:"phone,omitempty"`
	Company      string         `json:"company,omitempty"`
	Subject      string         `json:"subject,omitempty"`
	Content      string         `json:"content,omitempty"`
	Time         time.Time      `json:"time,omitzero"`
	CustomFields map[string]any `json:"customFields,omitempty"`
}

// OfflineMessage calls GET livechat/offlineMessages/{id}.
func (c *Client) OfflineMessage(ctx context.Context, id string) (*OfflineMessage, error) {
	seg, err := pathID("offline message", id)
	if err != nil {
		return nil, err
	}
	var out OfflineMessage
	if err := c.Do(ctx, http.MethodGet, "livechat/offlineMessages/"+seg, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AttachOfflineMessageToTicket calls POST livechat/offlineMessages/{id}:AttachToTicket.
func (c *Client) AttachOfflineMessageToTicket(ctx context.Context, msgID, ticketID string) error {
	seg, err := pathID("offline message", msgID)
	if err != nil {
		return err
	}
	if _, err := pathID("ticket", ticketID); err != nil {
		return err
	}
	return c.Do(ctx, http.MethodPost, "livechat/offlineMessages/"+seg+":AttachToTicket", nil,
		attachBody{ID(ticketID).jsonValue()}, nil)
}

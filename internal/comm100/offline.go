package comm100

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// OfflineMessage is a message a visitor left while no agent was online, as
// GET livechat/offlineMessages/{id} returns it. Its id is an integer; GUID is
// the id the offline-message webhook carries.
type OfflineMessage struct {
	ID                 ID        `json:"id"`
	GUID               ID        `json:"guid,omitempty"`
	CreatedTime        time.Time `json:"createdTime,omitzero"`
	Name               string    `json:"name,omitempty"`
	Email              string    `json:"email,omitempty"`
	Phone              string    `json:"phone,omitempty"`
	Company            string    `json:"company,omitempty"`
	Subject            string    `json:"subject,omitempty"`
	Message            string    `json:"message,omitempty"`
	DepartmentID       ID        `json:"departmentId,omitempty"`
	SkillID            ID        `json:"skillId,omitempty"`
	AgentID            ID        `json:"agentId,omitempty"`
	TicketID           ID        `json:"ticketId,omitempty"` // the ticket it is attached to
	CampaignID         ID        `json:"campaignId,omitempty"`
	VisitorID          ID        `json:"visitorId,omitempty"`
	ContactIdentityID  ID        `json:"contactIdentityId,omitempty"`
	AttachmentFileName string    `json:"attachmentFileName,omitempty"`
	Source             Enum      `json:"source,omitempty"`
}

// OfflineMessage calls GET livechat/offlineMessages/{id}; id is the integer
// id or the GUID, which the page says it takes either.
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

// ResolveOfflineMessageID returns the integer id of an offline message: id
// itself when it is one, else the id GET livechat/offlineMessages/{guid}
// answers. A 404 for a GUID is temporary (ErrNotStoredYet).
func (c *Client) ResolveOfflineMessageID(ctx context.Context, id string) (string, error) {
	if IsIntID(id) {
		return id, nil
	}
	if !IsGUID(id) {
		return "", fmt.Errorf("comm100: offline message id %q is neither an integer nor a GUID", id)
	}
	m, err := c.OfflineMessage(ctx, id)
	if err != nil {
		return "", notStoredYet("offline message", id, err)
	}
	if !IsIntID(string(m.ID)) {
		return "", fmt.Errorf("comm100 GET livechat/offlineMessages/%s: answer has id %q, want an integer", id, m.ID)
	}
	return string(m.ID), nil
}

// AttachOfflineMessageToTicket calls POST
// livechat/offlineMessages/{id}:AttachToTicket. msgID is the integer id or
// the GUID of the webhook; a GUID is first turned into the integer id, as the
// page documents the GUID for GET only.
func (c *Client) AttachOfflineMessageToTicket(ctx context.Context, msgID, ticketID string) error {
	if _, err := pathID("offline message", msgID); err != nil {
		return err
	}
	if _, err := pathID("ticket", ticketID); err != nil {
		return err
	}
	id, err := c.ResolveOfflineMessageID(ctx, msgID)
	if err != nil {
		return err
	}
	return c.Do(ctx, http.MethodPost, "livechat/offlineMessages/"+url.PathEscape(id)+":AttachToTicket", nil,
		attachBody{ID(ticketID).jsonValue()}, nil)
}

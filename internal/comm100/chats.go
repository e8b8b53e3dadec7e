package comm100

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// Chat is a live chat with its transcript. Its id is an integer on v4.
type Chat struct {
	ID           ID             `json:"id"`
	VisitorID    ID             `json:"visitorId,omitempty"`
	CampaignID   ID             `json:"campaignId,omitempty"`
	DepartmentID ID             `json:"departmentId,omitempty"`
	AgentIDs     []ID           `json:"agentIds,omitempty"`
	TicketID     ID             `json:"ticketId,omitempty"`
	Rating       int            `json:"rating,omitempty"`
	StartTime    time.Time      `json:"startTime,omitzero"`
	EndTime      time.Time      `json:"endTime,omitzero"`
	CustomFields map[string]any `json:"customFields,omitempty"`
	Messages     []ChatMessage  `json:"messages,omitempty"`
}

// ChatMessage is one line of a chat transcript.
type ChatMessage struct {
	SenderType string    `json:"senderType,omitempty"` // visitor, agent, system, bot
	SenderID   ID        `json:"senderId,omitempty"`
	Sender     string    `json:"sender,omitempty"`
	Content    string    `json:"content"`
	Time       time.Time `json:"time,omitzero"`
}

// ChatQuery is the body of a chat search. TimeFrom is required.
type ChatQuery struct {
	TimeFrom  time.Time `json:"timeFrom"`
	TimeTo    time.Time `json:"timeTo,omitzero"`
	VisitorID string    `json:"visitorId,omitempty"`
	AgentID   string    `json:"agentId,omitempty"`
	PageIndex int       `json:"pageIndex,omitempty"`
	PageSize  int       `json:"pageSize,omitempty"`
}

// Chat calls GET livechat/chats/{id}.
func (c *Client) Chat(ctx context.Context, id string) (*Chat, error) {
	seg, err := pathID("chat", id)
	if err != nil {
		return nil, err
	}
	var out Chat
	if err := c.Do(ctx, http.MethodGet, "livechat/chats/"+seg, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SearchChats calls POST livechat/chats:search and returns the one page the
// query asks for (PageIndex, PageSize).
func (c *Client) SearchChats(ctx context.Context, q ChatQuery) ([]Chat, error) {
	raw, err := c.call(ctx, http.MethodPost, "livechat/chats:search", nil, q)
	if err != nil {
		return nil, err
	}
	p, err := decodePage[Chat](raw, "list")
	if err != nil {
		return nil, fmt.Errorf("comm100 POST livechat/chats:search: decode answer: %w", err)
	}
	if p.items == nil {
		p.items = []Chat{}
	}
	return p.items, nil
}

// AttachChatToTicket calls POST livechat/chats/{id}:AttachToTicket.
func (c *Client) AttachChatToTicket(ctx context.Context, chatID, ticketID string) error {
	seg, err := pathID("chat", chatID)
	if err != nil {
		return err
	}
	if _, err := pathID("ticket", ticketID); err != nil {
		return err
	}
	return c.Do(ctx, http.MethodPost, "livechat/chats/"+seg+":AttachToTicket", nil,
		attachBody{ID(ticketID).jsonValue()}, nil)
}

// attachBody is the body of the AttachToTicket calls.
type attachBody struct {
	TicketID any `json:"ticketId"`
}

package comm100

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Chat is a live chat as GET livechat/chats/{id} returns it. Its id is an
// integer; the live-chat webhooks name the same chat by a GUID, which
// GET livechat/chats/{guid} also takes (see ResolveChatID).
type Chat struct {
	ID              ID           `json:"id"`
	SessionID       ID           `json:"sessionId,omitempty"`
	Status          Enum         `json:"status,omitempty"` // normal, refused, missed, switchedToMessage (or 0, 1, 2)
	Source          Enum         `json:"source,omitempty"`
	StartTime       time.Time    `json:"startTime,omitzero"`
	EndTime         time.Time    `json:"endTime,omitzero"`
	RequestedTime   time.Time    `json:"requestedTime,omitzero"`
	Messages        ChatMessages `json:"messages,omitzero"`
	PreChatName     string       `json:"preChatName,omitempty"`
	PreChatEmail    string       `json:"preChatEmail,omitempty"`
	PreChatPhone    string       `json:"preChatPhone,omitempty"`
	PreChatCompany  string       `json:"preChatCompany,omitempty"`
	PreChatTicketID ID           `json:"preChatTicketId,omitempty"` // the ticket this chat is attached to
	DepartmentID    ID           `json:"departmentId,omitempty"`
	SkillID         ID           `json:"skillId,omitempty"`
	CampaignID      ID           `json:"campaignId,omitempty"`
	WaitingTime     flexNumber   `json:"waitingTime,omitempty"`
	Duration        flexNumber   `json:"duration,omitempty"`
}

// ChatMessages is the "messages" of a chat. The reference types it as a
// string and does not describe its entries, so it is decoded tolerantly: a
// JSON list (or a string holding one) fills Items with its entries as they
// come; any other string is kept in Text.
type ChatMessages struct {
	Text  string
	Items []map[string]any
}

// IsZero reports whether no messages came.
func (m ChatMessages) IsZero() bool { return m.Text == "" && m.Items == nil }

// UnmarshalJSON accepts a list, a string holding a list, any other string, or null.
func (m *ChatMessages) UnmarshalJSON(b []byte) error {
	*m = ChatMessages{}
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || bytes.Equal(b, []byte("null")):
		return nil
	case b[0] == '[':
		return json.Unmarshal(b, &m.Items)
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if t := strings.TrimSpace(s); strings.HasPrefix(t, "[") {
			var items []map[string]any
			if json.Unmarshal([]byte(t), &items) == nil {
				m.Items = items
				return nil
			}
		}
		m.Text = s
		return nil
	}
	return fmt.Errorf("chat messages: want a list or a string, got %.20s", b)
}

// MarshalJSON writes the list if there is one, else the text.
func (m ChatMessages) MarshalJSON() ([]byte, error) {
	if m.Items != nil {
		return json.Marshal(m.Items)
	}
	return json.Marshal(m.Text)
}

// Filter is one condition of a :Search call, as the search pages give them:
// {"name": "departmentId", "operator": "is", "value": ["..."]}.
type Filter struct {
	Name     string   `json:"name"`
	Operator string   `json:"operator"`
	Value    []string `json:"value"`
}

// ChatQuery is a chat search. The filters go in the body; paging, order and
// includes in the query string, as on Comm100's :Search endpoints.
type ChatQuery struct {
	Filters   []Filter
	PageIndex int      // 1-based; 0: the server's default
	PageSize  int      // 0: the server's default
	SortBy    string   // e.g. "startTime"
	SortOrder string   // "asc" or "desc"
	Include   []string // related objects, e.g. "chatAgent"
}

// ChatPage is one page of a chat search.
type ChatPage struct {
	Chats []Chat
	Total int // -1 when the answer did not say
}

// Chat calls GET livechat/chats/{id}; id is the chat's integer id or the
// GUID the live-chat webhooks carry.
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

// SearchChats calls POST livechat/chats:search and returns the page the
// query asks for.
func (c *Client) SearchChats(ctx context.Context, q ChatQuery) (*ChatPage, error) {
	query := url.Values{}
	if q.PageIndex > 0 {
		query.Set("pageIndex", strconv.Itoa(q.PageIndex))
	}
	if q.PageSize > 0 {
		query.Set("pageSize", strconv.Itoa(q.PageSize))
	}
	if q.SortBy != "" {
		query.Set("sortBy", q.SortBy)
	}
	if q.SortOrder != "" {
		query.Set("sortOrder", q.SortOrder)
	}
	for _, inc := range q.Include {
		query.Add("include", inc)
	}
	filters := q.Filters
	if filters == nil {
		filters = []Filter{}
	}
	raw, err := c.call(ctx, http.MethodPost, "livechat/chats:search", query, searchBody{Filters: filters})
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
	return &ChatPage{Chats: p.items, Total: p.total}, nil
}

// searchBody is the body of the :Search calls.
type searchBody struct {
	Filters []Filter `json:"filters"`
}

// ResolveChatID returns the integer id of a chat: id itself when it is one,
// else the id GET livechat/chats/{guid} answers for the GUID a live-chat
// webhook carries. Comm100 stores a chat some seconds after it ends, so a
// 404 for a GUID is a temporary failure (ErrNotStoredYet), not a permanent one.
func (c *Client) ResolveChatID(ctx context.Context, id string) (string, error) {
	if IsIntID(id) {
		return id, nil
	}
	if !IsGUID(id) {
		return "", fmt.Errorf("comm100: chat id %q is neither an integer nor a GUID", id)
	}
	chat, err := c.Chat(ctx, id)
	if err != nil {
		return "", notStoredYet("chat", id, err)
	}
	if !IsIntID(string(chat.ID)) {
		return "", fmt.Errorf("comm100 GET livechat/chats/%s: answer has id %q, want an integer", id, chat.ID)
	}
	return string(chat.ID), nil
}

// ErrNotStoredYet marks a lookup by GUID that Comm100 answered 404: the chat
// or offline message a webhook just announced may not be stored yet (Comm100's
// own API tests wait for it), so the call is worth retrying later. Such an
// error is temporary: errors.Is(err, ErrTemporary) holds, and it does not
// unwrap to the *APIError, whose 404 would say permanent.
var ErrNotStoredYet = errors.New("comm100: not stored yet")

type notStoredError struct {
	what, id string
	err      *APIError
}

func (e *notStoredError) Error() string {
	return fmt.Sprintf("comm100: %s %s is not stored (yet): Comm100 stores it some seconds after the webhook, or the id is wrong: %v",
		e.what, e.id, e.err)
}

// Is reports ErrNotStoredYet and ErrTemporary.
func (e *notStoredError) Is(target error) bool {
	return target == ErrNotStoredYet || target == ErrTemporary
}

// notStoredYet turns a 404 of a lookup by GUID into a temporary error.
func notStoredYet(what, id string, err error) error {
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return &notStoredError{what: what, id: id, err: ae}
	}
	return err
}

// AttachChatToTicket calls POST livechat/chats/{id}:AttachToTicket. chatID is
// the integer id or the GUID of a live-chat webhook; a GUID is first turned
// into the integer id (ResolveChatID).
func (c *Client) AttachChatToTicket(ctx context.Context, chatID, ticketID string) error {
	if _, err := pathID("chat", chatID); err != nil {
		return err
	}
	if _, err := pathID("ticket", ticketID); err != nil {
		return err
	}
	id, err := c.ResolveChatID(ctx, chatID)
	if err != nil {
		return err
	}
	return c.Do(ctx, http.MethodPost, "livechat/chats/"+url.PathEscape(id)+":AttachToTicket", nil,
		attachBody{ID(ticketID).jsonValue()}, nil)
}

// attachBody is the body of the AttachToTicket calls.
type attachBody struct {
	TicketID any `json:"ticketId"`
}

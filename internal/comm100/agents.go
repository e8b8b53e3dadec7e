package comm100

import (
	"context"
	"net/http"
)

// Agent is a Comm100 agent (global/agents). Live-chat status lists
// (livechat/agents) fill ID, Status ("Online", "Away", a custom away status)
// and OngoingChats only.
type Agent struct {
	ID            ID     `json:"id"`
	Email         string `json:"email,omitempty"`
	DisplayName   string `json:"displayName,omitempty"`
	FirstName     string `json:"firstName,omitempty"`
	LastName      string `json:"lastName,omitempty"`
	Status        string `json:"status,omitempty"`
	OngoingChats  int    `json:"ongoingChats,omitempty"`
	IsActive      bool   `json:"isActive,omitempty"`
	TimeZone      string `json:"timeZone,omitempty"` // a Windows id; see Location
	DepartmentIDs []ID   `json:"departmentIds,omitempty"`
}

// LiveChatAgents calls GET livechat/agents: the status of every agent (a
// bare array).
func (c *Client) LiveChatAgents(ctx context.Context) ([]Agent, error) {
	return collect(list[Agent](ctx, c, "livechat/agents", nil, "agents"))
}

// SetAgentStatus calls PUT livechat/agents/{id} {"status": status}; status
// is "online", "away" or a custom away status the site enabled.
func (c *Client) SetAgentStatus(ctx context.Context, agentID, status string) error {
	seg, err := pathID("agent", agentID)
	if err != nil {
		return err
	}
	return c.Do(ctx, http.MethodPut, "livechat/agents/"+seg, nil, map[string]string{"status": status}, nil)
}

package comm100

import (
	"context"
	"iter"
	"net/url"
	"strconv"
)

// Department is a group of agents.
type Department struct {
	ID          ID     `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	AgentIDs    []ID   `json:"agentIds,omitempty"`
}

// Campaign is a live-chat campaign (a chat button, window and rules).
type Campaign struct {
	ID          ID     `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// Visitor is a website visitor as global/visitors returns it.
type Visitor struct {
	ID             ID     `json:"id"`
	Name           string `json:"name,omitempty"`
	Email          string `json:"email,omitempty"`
	NumberOfVisits int    `json:"numberOfVisits"`
	NumberOfChats  int    `json:"numberOfChats"`
}

// VisitorQuery narrows and orders the visitors list. Zero fields are left
// to the server's defaults. The visitor page lists no parameters for the
// list; these are the paging parameters of Comm100's other lists.
type VisitorQuery struct {
	PageSize  int    // items per page; Comm100's default is 10
	SortBy    string // a field name
	SortOrder string // "asc" or "desc"
}

// Agents calls GET global/agents: every agent of the site.
func (c *Client) Agents(ctx context.Context) ([]Agent, error) {
	return collect(list[Agent](ctx, c, "global/agents", nil, "agents"))
}

// Departments calls GET global/departments.
func (c *Client) Departments(ctx context.Context) ([]Department, error) {
	return collect(list[Department](ctx, c, "global/departments", nil, "departments"))
}

// Campaigns calls GET livechat/campaigns.
func (c *Client) Campaigns(ctx context.Context) ([]Campaign, error) {
	return collect(list[Campaign](ctx, c, "livechat/campaigns", nil, "campaigns"))
}

// Visitors iterates over GET global/visitors ({"visitors": [...],
// "nextPage", "previousPage", "total"}), fetching the pages as the loop
// goes; an error ends the loop:
//
//	for v, err := range client.Visitors(ctx, comm100.VisitorQuery{PageSize: 100}) {
//		if err != nil { return err }
//		...
//	}
func (c *Client) Visitors(ctx context.Context, q VisitorQuery) iter.Seq2[Visitor, error] {
	query := url.Values{}
	if q.PageSize > 0 {
		query.Set("pageSize", strconv.Itoa(q.PageSize))
	}
	if q.SortBy != "" {
		query.Set("sortBy", q.SortBy)
	}
	if q.SortOrder != "" {
		query.Set("sortOrder", q.SortOrder)
	}
	return list[Visitor](ctx, c, "global/visitors", query, "visitors")
}

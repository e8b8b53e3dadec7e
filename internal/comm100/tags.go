package comm100

import (
	"context"
	"net/http"
)

// Tag is a ticket tag.
type Tag struct {
	ID   ID     `json:"id"`
	Name string `json:"name"`
}

// Tags calls GET ticketing/tags (a bare array, or pages under "tags").
func (c *Client) Tags(ctx context.Context) ([]Tag, error) {
	return collect(list[Tag](ctx, c, "ticketing/tags", nil, "tags"))
}

// CreateTag calls POST ticketing/tags.
func (c *Client) CreateTag(ctx context.Context, name string) (*Tag, error) {
	var out Tag
	if err := c.Do(ctx, http.MethodPost, "ticketing/tags", nil, map[string]string{"name": name}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

package comm100

import (
	"context"
	"net/http"
)

// Webhook is a live-chat webhook subscription. Its id arrives as a number
// or a string depending on the platform.
type Webhook struct {
	ID        ID     `json:"id"`
	Event     string `json:"event"`
	TargetURL string `json:"targetUrl"`
}

// Webhooks calls GET livechat/webhooks (a bare array).
func (c *Client) Webhooks(ctx context.Context) ([]Webhook, error) {
	return collect(list[Webhook](ctx, c, "livechat/webhooks", nil, "webhooks"))
}

// CreateWebhook calls POST livechat/webhooks {"event", "targetUrl"}.
func (c *Client) CreateWebhook(ctx context.Context, event, targetURL string) (*Webhook, error) {
	var out Webhook
	in := webhookBody{Event: event, TargetURL: targetURL}
	if err := c.Do(ctx, http.MethodPost, "livechat/webhooks", nil, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateWebhook calls PUT livechat/webhooks/{id}.
func (c *Client) UpdateWebhook(ctx context.Context, id, event, targetURL string) (*Webhook, error) {
	seg, err := pathID("webhook", id)
	if err != nil {
		return nil, err
	}
	var out Webhook
	in := webhookBody{Event: event, TargetURL: targetURL}
	if err := c.Do(ctx, http.MethodPut, "livechat/webhooks/"+seg, nil, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteWebhook calls DELETE livechat/webhooks/{id}.
func (c *Client) DeleteWebhook(ctx context.Context, id string) error {
	seg, err := pathID("webhook", id)
	if err != nil {
		return err
	}
	return c.Do(ctx, http.MethodDelete, "livechat/webhooks/"+seg, nil, nil, nil)
}

type webhookBody struct {
	Event     string `json:"event"`
	TargetURL string `json:"targetUrl"`
}

// Package comm100 is the client for the Comm100 REST API: where to call, how
// to authenticate, typed calls, and the errors it answers with. It never
// retries: retrying is the worker pool's job.
package comm100

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/comm100bot/bot/internal/secret"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Config holds the Comm100 settings, under the "comm100" key.
type Config struct {
	// Domain is the control-panel host, e.g. "dash11.comm100.io"; it derives
	// the API base and the token URL.
	Domain string `koanf:"domain"`
	// BaseURL overrides the API base derived from Domain, e.g. the simulator's
	// "http://127.0.0.1:8089/v4/".
	BaseURL string `koanf:"base_url"`
	// TokenURL overrides the OAuth token endpoint derived from Domain.
	TokenURL string `koanf:"token_url"`
	// SiteID is the Comm100 site (account) id, sent as ?siteId= on every call.
	SiteID string `koanf:"site_id"`
	// Email of the agent whose API key or password is used.
	Email string `koanf:"email"`
	// APIKey for HTTP Basic auth (email + key).
	APIKey secret.String `koanf:"api_key"`
	// Password and ClientID for the OAuth password grant, instead of an API key.
	Password secret.String `koanf:"password"`
	ClientID string        `koanf:"client_id"`
	// Timeout of one HTTP call. Default 30s.
	Timeout time.Duration `koanf:"timeout"`
	// RateLimit is the call budget the bot keeps to.
	RateLimit RateLimit `koanf:"rate_limit"`
}

// RateLimit is a budget of Calls in any window of Per.
type RateLimit struct {
	// Calls allowed in any window of Per. Default 300.
	Calls int `koanf:"calls"`
	// Per is the window. Default 5m.
	Per time.Duration `koanf:"per"`
	// Shared keeps one budget across all replicas in NATS KV. Default false.
	Shared bool `koanf:"shared"`
}

// Defaults fills the zero fields with their documented defaults.
func (c *Config) Defaults() {
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
	if c.RateLimit.Calls == 0 {
		c.RateLimit.Calls = 300
	}
	if c.RateLimit.Per == 0 {
		c.RateLimit.Per = 5 * time.Minute
	}
}

// HasCredentials reports whether the config can authenticate at all. Without
// credentials the bot runs its actions dry.
func (c *Config) HasCredentials() bool {
	return c.SiteID != "" && c.Email != "" && (c.APIKey != "" || c.Password != "")
}

// Validate checks the config for a client that will make calls.
func (c *Config) Validate() error {
	if _, err := c.APIBase(); err != nil {
		return err
	}
	if c.SiteID == "" {
		return fmt.Errorf("comm100.site_id: required")
	}
	if c.Email == "" {
		return fmt.Errorf("comm100.email: required")
	}
	if c.APIKey == "" && c.Password == "" {
		return fmt.Errorf("comm100.api_key or comm100.password: one is required")
	}
	if c.RateLimit.Calls < 1 {
		return fmt.Errorf("comm100.rate_limit.calls: want a positive number, got %d", c.RateLimit.Calls)
	}
	if c.RateLimit.Per <= 0 {
		return fmt.Errorf("comm100.rate_limit.per: want a positive duration, got %s", c.RateLimit.Per)
	}
	return nil
}

// APIBase returns the base URL of the API, ending in "/".
func (c *Config) APIBase() (*url.URL, error) {
	raw := c.BaseURL
	if raw == "" {
		if c.Domain == "" {
			return nil, fmt.Errorf("comm100.domain or comm100.base_url: one is required")
		}
		ep, err := Endpoints(c.Domain)
		if err != nil {
			return nil, err
		}
		raw = ep.APIBase
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("comm100.base_url %q: want an absolute http(s) URL", raw)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	return u, nil
}

// Client calls the Comm100 API. It is safe for concurrent use.
type Client struct {
	cfg  Config
	base *url.URL
	http *http.Client
}

// New returns a client for cfg. It validates the config up front.
func New(cfg Config, hc *http.Client) (*Client, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	base, err := cfg.APIBase()
	if err != nil {
		return nil, err
	}
	if hc == nil {
		hc = &http.Client{Timeout: cfg.Timeout}
	}
	return &Client{cfg: cfg, base: base, http: hc}, nil
}

// BaseURL returns the API base the client calls.
func (c *Client) BaseURL() string { return c.base.String() }

// Do makes one call: method and path relative to the API base, an optional
// query, an optional JSON body, and out (may be nil) to decode a 2xx body into.
// A non-2xx answer is returned as *APIError.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	path = strings.TrimPrefix(path, "/")
	u := c.base.JoinPath(path)
	q := url.Values{}
	for k, vs := range query {
		q[k] = vs
	}
	q.Set("siteId", c.cfg.SiteID)
	u.RawQuery = q.Encode()

	var rd io.Reader
	if body != nil {
		buf, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("comm100 %s %s: encode body: %w", method, path, err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return fmt.Errorf("comm100 %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.SetBasicAuth(c.cfg.Email, c.cfg.APIKey.Reveal())

	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("comm100 %s %s: %w", method, path, scrubURLError(err))
	}
	defer resp.Body.Close()
	const maxBody = 16 << 20
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("comm100 %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return newAPIError(method, path, resp, data)
	}
	if out == nil || len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("comm100 %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// scrubURLError drops the URL from a transport error: the query may carry
// identifiers we do not want in logs, and the message is clearer without it.
func scrubURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// Package comm100 is the client for the Comm100 REST API: where to call, how
// to authenticate, typed calls, and the errors it answers with. It never
// retries: retrying is the worker pool's job.
package comm100

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/comm100bot/bot/internal/secret"
)

// Config holds the Comm100 settings, under the "comm100" key.
type Config struct {
	// Domain is the control-panel host, e.g. "dash11.comm100.io"; it derives
	// the API base and the token URL.
	Domain string `koanf:"domain"`
	// BaseURL overrides the API base derived from Domain, e.g. the simulator's
	// "http://127.0.0.1:8089/v4/".
	BaseURL string `koanf:"base_url"`
	// TokenURL overrides the OAuth token endpoint derived from Domain. With
	// only BaseURL set it defaults to the API host's /oauth/token
	// (dashNN.comm100.io for apiNN.comm100.io).
	TokenURL string `koanf:"token_url"`
	// SiteID is the Comm100 site (account) id, sent as ?siteId= on every call.
	SiteID string `koanf:"site_id"`
	// Email of the agent whose API key or password is used.
	Email string `koanf:"email"`
	// APIKey for HTTP Basic auth (email + key, plus ?siteId=).
	APIKey secret.String `koanf:"api_key"`
	// Password for the OAuth password grant, instead of an API key. The
	// token is cached and refreshed before it expires.
	Password secret.String `koanf:"password"`
	// ClientID of the OAuth client (Control Panel > Global Settings >
	// Security > OAuth Client); sent with the password grant. v2 omits it.
	ClientID string `koanf:"client_id"`
	// Base64Bodies sends ticket message bodies and note texts as
	// "data:text/plain;base64,...", as the Message and Note pages advise when
	// Comm100's firewall blocks the plain text. Default false: plain text.
	Base64Bodies bool `koanf:"base64_bodies"`
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
	// Shared keeps one budget for all the replicas that name the same
	// Budget: together they never make more than Calls calls in any window
	// of Per. Without it each replica keeps a budget of its own. Either way
	// the budget is kept in NATS, so calls made before a restart still
	// count after it. Default false.
	Shared bool `koanf:"shared"`
	// Budget names the budget in NATS. Default: the site id. Comm100 limits
	// each client IP address: replicas that reach it from different
	// addresses can name different budgets.
	Budget string `koanf:"budget"`
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
func (c *Config) HasCredentials() bool { return len(c.MissingCredentials()) == 0 }

// AnyCredential reports whether any of the credentials is set.
func (c *Config) AnyCredential() bool { return len(c.MissingCredentials()) < 3 }

// MissingCredentials names the credentials not set, of the three a client
// needs: the site, the agent's email, and an API key or a password.
func (c *Config) MissingCredentials() []string {
	var missing []string
	if c.SiteID == "" {
		missing = append(missing, "comm100.site_id")
	}
	if c.Email == "" {
		missing = append(missing, "comm100.email")
	}
	if c.APIKey == "" && c.Password == "" {
		missing = append(missing, "comm100.api_key (or comm100.password)")
	}
	return missing
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
	if c.APIKey != "" && c.Password != "" {
		return fmt.Errorf("comm100.api_key and comm100.password: set one, not both")
	}
	if c.Password != "" {
		if _, err := c.tokenURL(); err != nil {
			return err
		}
	}
	if c.Timeout < 0 {
		return fmt.Errorf("comm100.timeout: want a positive duration, got %s", c.Timeout)
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
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("comm100.base_url %q: want an absolute http(s) URL", raw)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	return u, nil
}

// tokenURL returns the OAuth token endpoint: TokenURL, else derived from
// Domain, else from the API base.
func (c *Config) tokenURL() (string, error) {
	raw := c.TokenURL
	if raw == "" && c.Domain != "" {
		ep, err := Endpoints(c.Domain)
		if err != nil {
			return "", err
		}
		raw = ep.TokenURL
	}
	if raw == "" {
		base, err := c.APIBase()
		if err != nil {
			return "", err
		}
		raw = tokenURLFor(base)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("comm100.token_url %q: want an absolute http(s) URL", raw)
	}
	return u.String(), nil
}

// Client calls the Comm100 API. It is safe for concurrent use.
//
// Every call, token fetches included, goes through the *http.Client given to
// New, so a limiting Transport there sees all of them. The client never
// retries a call, except once after a 401 with a fresh OAuth token.
type Client struct {
	cfg    Config
	base   *url.URL
	http   *http.Client
	tokens *tokenSource // nil with API-key auth
	now    func() time.Time

	// legacyContacts is set once contact/contacts answered 404 and the
	// shard serves global/contacts instead.
	legacyContacts atomic.Bool
}

// New returns a client for cfg. It validates the config up front. hc carries
// every call, including OAuth token fetches; nil means a plain client with
// cfg.Timeout.
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
	c := &Client{cfg: cfg, base: base, http: hc, now: time.Now}
	if cfg.Password != "" {
		tu, err := cfg.tokenURL()
		if err != nil {
			return nil, err
		}
		c.tokens = &tokenSource{
			http: hc, url: tu, email: cfg.Email, password: cfg.Password, clientID: cfg.ClientID,
			now: func() time.Time { return c.now() }, scrub: c.scrub,
		}
	}
	return c, nil
}

// BaseURL returns the API base the client calls.
func (c *Client) BaseURL() string { return c.base.String() }

// Auth names the authentication in use: "api_key" or "oauth".
func (c *Client) Auth() string {
	if c.tokens != nil {
		return "oauth"
	}
	return "api_key"
}

// String describes the client without its secrets.
func (c *Client) String() string {
	return fmt.Sprintf("comm100.Client{base_url: %s, site_id: %s, email: %s, auth: %s}",
		c.base, c.cfg.SiteID, c.cfg.Email, c.Auth())
}

// GoString keeps %#v from printing the secrets held inside.
func (c *Client) GoString() string { return c.String() }

// LogValue implements slog.LogValuer without the secrets.
func (c *Client) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("base_url", c.base.String()),
		slog.String("site_id", c.cfg.SiteID),
		slog.String("auth", c.Auth()),
	)
}

// Do makes one call: method and path relative to the API base (already
// escaped, e.g. "livechat/chats/42:AttachToTicket"), an optional query, an
// optional JSON body, and out (may be nil) to decode a 2xx body into.
// A non-2xx answer is returned as *APIError.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	path = strings.TrimPrefix(path, "/")
	data, err := c.call(ctx, method, path, query, body)
	if err != nil {
		return err
	}
	if out == nil || len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("comm100 %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// maxAnswer bounds the body read from one answer.
const maxAnswer = 16 << 20

// call makes one call and returns the 2xx body. With OAuth, a 401 drops the
// token and the call is made once more with a fresh one.
func (c *Client) call(ctx context.Context, method, path string, query url.Values, body any) ([]byte, error) {
	u := c.base.JoinPath(path)
	q := url.Values{}
	for k, vs := range query {
		q[k] = vs
	}
	q.Set("siteId", c.cfg.SiteID)
	u.RawQuery = q.Encode()

	var buf []byte
	if body != nil {
		var err error
		if buf, err = json.Marshal(body); err != nil {
			return nil, fmt.Errorf("comm100 %s %s: encode body: %w", method, path, err)
		}
	}
	for attempt := 1; ; attempt++ {
		var rd io.Reader
		if buf != nil {
			rd = bytes.NewReader(buf)
		}
		req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
		if err != nil {
			return nil, fmt.Errorf("comm100 %s %s: %w", method, path, err)
		}
		req.Header.Set("Accept", "application/json")
		if buf != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		var tok secret.String
		if c.tokens != nil {
			if tok, err = c.tokens.token(ctx); err != nil {
				return nil, fmt.Errorf("comm100 %s %s: authenticate: %w", method, path, err)
			}
			req.Header.Set("Authorization", "Bearer "+tok.Reveal())
		} else {
			req.SetBasicAuth(c.cfg.Email, c.cfg.APIKey.Reveal())
		}

		resp, err := c.http.Do(req)
		if err != nil {
			return nil, fmt.Errorf("comm100 %s %s: %w", method, path, transportError(err))
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("comm100 %s %s: read answer: %w", method, path, &TransportError{Err: err})
		}
		if resp.StatusCode == http.StatusUnauthorized && c.tokens != nil && attempt == 1 {
			c.tokens.invalidate(tok)
			continue
		}
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return nil, newAPIError(method, path, resp, data, c.now(), c.scrub)
		}
		return data, nil
	}
}

// scrub replaces any credential the client holds with "<redacted>", for
// text a server may have echoed into an error.
func (c *Client) scrub(s string) string {
	if s == "" {
		return s
	}
	secrets := []string{c.cfg.APIKey.Reveal(), c.cfg.Password.Reveal()}
	if c.tokens != nil {
		secrets = append(secrets, c.tokens.secrets()...)
	}
	for _, v := range secrets {
		if len(v) >= 4 {
			s = strings.ReplaceAll(s, v, "<redacted>")
		}
	}
	return s
}

// transportError makes a failed http.Client.Do a *TransportError, without
// its URL: the query may carry identifiers we do not want in logs, and the
// message is clearer without it.
func transportError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		err = ue.Err
	}
	return &TransportError{Err: err}
}

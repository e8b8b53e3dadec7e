package ingest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// NewRequest builds the webhook request that a sender configured like source
// name would make to the bot at baseURL: the URL with the source's token, the
// content type, and the signature headers or credentials, computed over body
// at now. It is how `bot send` tries a configuration.
func NewRequest(ctx context.Context, baseURL, name string, cfg SourceConfig, body []byte, now time.Time) (*http.Request, error) {
	s, err := newSource(name, cfg)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(strings.TrimSuffix(baseURL, "/"))
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("bot URL %q: want an absolute http(s) URL", baseURL)
	}
	u = u.JoinPath("hooks", name)
	if len(s.token) > 0 {
		u = u.JoinPath(string(s.token))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if cfg.Kind == KindCloudEvents {
		req.Header.Set("Content-Type", ceStructured)
	}
	verifiers := s.verifiers
	if cfg.Kind == KindComm100 {
		// Comm100 sends the shared-secret header on the webhooks that have it configured.
		verifiers, _ = newVerifiers(name, cfg)
	}
	for _, v := range verifiers {
		v.sign(req.Header, body, now)
	}
	return req, nil
}

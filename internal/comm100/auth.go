package comm100

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/comm100bot/bot/internal/secret"
)

// tokenSource gets, caches and renews the OAuth access token of the password
// grant. Concurrent callers that need a new token share one fetch.
type tokenSource struct {
	http     *http.Client
	url      string
	email    string
	password secret.String
	clientID string
	now      func() time.Time
	scrub    func(string) string

	mu      sync.Mutex
	access  secret.String
	refresh secret.String
	renewAt time.Time    // zero: no known expiry, keep until a 401
	flight  *tokenFlight // the fetch in progress, if any
}

// tokenFlight is one token fetch that several callers wait for.
type tokenFlight struct {
	done    chan struct{}
	err     error
	waiters int // callers waiting besides the fetching one; guarded by tokenSource.mu
}

// maxRenewEarly bounds how long before expires_in runs out a token is renewed.
const maxRenewEarly = 5 * time.Minute

// token returns a valid access token, fetching one if there is none or the
// cached one is due for renewal.
func (ts *tokenSource) token(ctx context.Context) (secret.String, error) {
	for {
		ts.mu.Lock()
		if ts.access != "" && (ts.renewAt.IsZero() || ts.now().Before(ts.renewAt)) {
			tok := ts.access
			ts.mu.Unlock()
			return tok, nil
		}
		if f := ts.flight; f != nil {
			f.waiters++
			ts.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return "", ctx.Err()
			}
			// The fetching caller may have given up because its own context
			// ended; then this caller tries, with its own.
			if f.err != nil && !(isContextError(f.err) && ctx.Err() == nil) {
				return "", f.err
			}
			continue
		}
		f := &tokenFlight{done: make(chan struct{})}
		ts.flight = f
		refresh := ts.refresh
		ts.mu.Unlock()

		tr, err := ts.fetch(ctx, refresh)

		ts.mu.Lock()
		ts.flight = nil
		if err == nil {
			ts.access, ts.refresh = tr.access, tr.refresh
			ts.renewAt = time.Time{}
			if tr.expiresIn > 0 {
				ts.renewAt = ts.now().Add(tr.expiresIn - min(tr.expiresIn/10, maxRenewEarly))
			}
		}
		f.err = err
		close(f.done)
		ts.mu.Unlock()
		if err != nil {
			return "", err
		}
		return tr.access, nil
	}
}

// invalidate drops the token a call was refused with, unless another caller
// has already replaced it. The next token comes from a password grant.
func (ts *tokenSource) invalidate(stale secret.String) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.access == stale {
		ts.access, ts.refresh, ts.renewAt = "", "", time.Time{}
	}
}

// secrets returns the tokens held, for scrubbing error text.
func (ts *tokenSource) secrets() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return []string{ts.access.Reveal(), ts.refresh.Reveal()}
}

type tokenResult struct {
	access    secret.String
	refresh   secret.String
	expiresIn time.Duration
}

// fetch gets a new token: with the refresh grant when a refresh token is
// known, falling back to the password grant if that one is refused.
func (ts *tokenSource) fetch(ctx context.Context, refresh secret.String) (tokenResult, error) {
	if refresh != "" {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh.Reveal()}}
		if ts.clientID != "" {
			form.Set("client_id", ts.clientID)
		}
		tr, err := ts.post(ctx, form)
		var ae *APIError
		if err == nil || !errors.As(err, &ae) || ae.Status < 400 || ae.Status > 499 {
			return tr, err
		}
	}
	form := url.Values{"grant_type": {"password"}, "email": {ts.email}, "password": {ts.password.Reveal()}}
	if ts.clientID != "" {
		form.Set("client_id", ts.clientID)
	}
	return ts.post(ctx, form)
}

// post makes one call to the token endpoint.
func (ts *tokenSource) post(ctx context.Context, form url.Values) (tokenResult, error) {
	grant := form.Get("grant_type")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.url, strings.NewReader(form.Encode()))
	if err != nil {
		return tokenResult{}, fmt.Errorf("comm100 %s grant: %w", grant, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := ts.http.Do(req)
	if err != nil {
		return tokenResult{}, fmt.Errorf("comm100 %s grant: %w", grant, transportError(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return tokenResult{}, fmt.Errorf("comm100 %s grant: read answer: %w", grant, &TransportError{Err: err})
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return tokenResult{}, newAPIError(http.MethodPost, req.URL.Path, resp, data, ts.now(), ts.scrub)
	}
	var tr struct {
		AccessToken  string     `json:"access_token"`
		TokenType    string     `json:"token_type"`
		ExpiresIn    flexNumber `json:"expires_in"`
		RefreshToken string     `json:"refresh_token"`
	}
	if err := json.Unmarshal(data, &tr); err != nil {
		return tokenResult{}, fmt.Errorf("comm100 %s grant: decode answer: %w", grant, err)
	}
	if tr.AccessToken == "" {
		return tokenResult{}, fmt.Errorf("comm100 %s grant: answer has no access_token", grant)
	}
	if tr.TokenType != "" && !strings.EqualFold(tr.TokenType, "bearer") {
		return tokenResult{}, fmt.Errorf("comm100 %s grant: token_type %q, want bearer", grant, tr.TokenType)
	}
	return tokenResult{
		access:    secret.String(tr.AccessToken),
		refresh:   secret.String(tr.RefreshToken),
		expiresIn: time.Duration(tr.ExpiresIn) * time.Second,
	}, nil
}

func isContextError(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// flexNumber is an integer sent as a JSON number or a numeric string.
type flexNumber int64

func (n *flexNumber) UnmarshalJSON(b []byte) error {
	var id ID
	if err := id.UnmarshalJSON(b); err != nil {
		return err
	}
	if id == "" {
		*n = 0
		return nil
	}
	var v json.Number = json.Number(id)
	i, err := v.Int64()
	if err != nil {
		f, ferr := v.Float64()
		if ferr != nil {
			return fmt.Errorf("want an integer, got %s", b)
		}
		i = int64(f)
	}
	*n = flexNumber(i)
	return nil
}

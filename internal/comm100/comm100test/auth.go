package comm100test

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"
	"time"
)

// refreshTTL is the life of a refresh token.
const refreshTTL = 30 * 24 * time.Hour

const denied = "Authorization has been denied for this request."

// authenticate checks an API call as Comm100 does: HTTP Basic with the agent
// email and API key plus the siteId query parameter, or a bearer token from
// the token endpoint.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) bool {
	site := r.URL.Query().Get("siteId")
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		tok := strings.TrimSpace(h[7:])
		s.mu.Lock()
		exp, ok := s.tokens[tok]
		s.mu.Unlock()
		switch {
		case !ok:
			writeError(w, http.StatusUnauthorized, 401000, denied)
			return false
		case !s.cfg.Now().Before(exp):
			writeError(w, http.StatusUnauthorized, 401000, "The access token has expired.")
			return false
		case site != "" && site != s.cfg.SiteID:
			writeError(w, http.StatusUnauthorized, 401000, denied)
			return false
		}
		return true
	}
	email, key, ok := r.BasicAuth()
	if !ok {
		writeError(w, http.StatusUnauthorized, 401000, denied)
		return false
	}
	if site == "" {
		writeError(w, http.StatusBadRequest, 400000, "Parameter 'siteId' is required.")
		return false
	}
	if !equal(email, s.cfg.Email) || !equal(key, s.cfg.APIKey) || site != s.cfg.SiteID {
		writeError(w, http.StatusUnauthorized, 401000, denied)
		return false
	}
	return true
}

// handleToken is POST /oauth/token: the password grant
// (grant_type=password&email=&password=&client_id=) and the refresh grant
// (grant_type=refresh_token&refresh_token=). A used refresh token is spent.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, 405000, "The token endpoint takes POST.")
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		writeError(w, http.StatusBadRequest, 400000, "The body must be application/x-www-form-urlencoded.")
		return
	}
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, 400000, "The body is not a valid form.")
		return
	}
	f := r.PostForm
	if id := f.Get("client_id"); id != "" && !equal(id, s.cfg.ClientID) {
		writeError(w, http.StatusUnauthorized, 401000, "The client_id is not valid.")
		return
	}
	now := s.cfg.Now()
	switch f.Get("grant_type") {
	case "password":
		for _, p := range []string{"email", "password", "client_id"} {
			if f.Get(p) == "" {
				writeError(w, http.StatusBadRequest, 400000, "Parameter '"+p+"' is required.")
				return
			}
		}
		if !equal(f.Get("email"), s.cfg.Email) || !equal(f.Get("password"), s.cfg.Password) {
			writeError(w, http.StatusUnauthorized, 401000, "The email or password is incorrect.")
			return
		}
	case "refresh_token":
		rt := f.Get("refresh_token")
		if rt == "" {
			writeError(w, http.StatusBadRequest, 400000, "Parameter 'refresh_token' is required.")
			return
		}
		s.mu.Lock()
		exp, ok := s.refresh[rt]
		delete(s.refresh, rt)
		s.mu.Unlock()
		if !ok || !now.Before(exp) {
			writeError(w, http.StatusUnauthorized, 401000, "The refresh token is not valid.")
			return
		}
	default:
		writeError(w, http.StatusBadRequest, 400000, "Parameter 'grant_type' must be password or refresh_token.")
		return
	}
	access, refresh := newToken(), newToken()
	s.mu.Lock()
	for t, exp := range s.tokens {
		if !now.Before(exp) {
			delete(s.tokens, t)
		}
	}
	s.tokens[access] = now.Add(s.cfg.TokenTTL)
	s.refresh[refresh] = now.Add(refreshTTL)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token":  access,
		"token_type":    "bearer",
		"expires_in":    int(s.cfg.TokenTTL / time.Second),
		"refresh_token": refresh,
	})
}

func newToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

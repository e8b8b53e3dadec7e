// Package comm100test is a Comm100 API simulator: an HTTP server that checks
// credentials, limits and answers as Comm100 documents, keeps state, injects
// faults on demand, and records every call. Tests use it over real HTTP;
// `bot sim` runs it for trying the bot without a Comm100 tenant.
//
// It deliberately does not import the client package: it is a second,
// independent reading of the API documentation.
package comm100test

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Config chooses the credentials the simulator accepts, its limit and its
// faults. Zero fields take the defaults below.
type Config struct {
	SiteID string
	Email  string
	APIKey string
	// Password and ClientID are accepted by the OAuth password grant at
	// POST /oauth/token.
	Password string
	ClientID string
	// TokenTTL is the life of an access token. Default 12h.
	TokenTTL time.Duration
	// RateLimit is the per-client-IP budget. Default 300 calls per 5m.
	RateLimit IPRateLimit
	// Faults to inject from the start; POST /_sim/faults changes them.
	Faults Faults
	// LegacyContacts serves contacts at global/contacts instead of
	// contact/contacts, as older v4 shards do.
	LegacyContacts bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// IPRateLimit is a budget of Calls per client IP in any window of Per (a true
// sliding window). Calls < 0 turns the limit off.
type IPRateLimit struct {
	Calls int
	Per   time.Duration
}

// Defaults of `bot sim`.
const (
	DefaultSiteID   = "10000"
	DefaultEmail    = "bot@example.com"
	DefaultAPIKey   = "sim-api-key"
	DefaultPassword = "sim-password"
	DefaultClientID = "sim-client"
	DefaultTokenTTL = 12 * time.Hour
	DefaultCalls    = 300
	DefaultPer      = 5 * time.Minute
)

// APIPrefix is the path under which the simulated API answers; the base URL
// to configure is the server's address followed by it.
const APIPrefix = "/v4/"

// TokenPath is where the simulated OAuth token endpoint answers.
const TokenPath = "/oauth/token"

// maxRequests bounds the call record; the oldest calls are dropped first.
const maxRequests = 100_000

// Request is one recorded call.
type Request struct {
	Time     time.Time       `json:"time"`
	ClientIP string          `json:"client_ip"`
	Method   string          `json:"method"`
	Path     string          `json:"path"`
	Query    string          `json:"query"`
	Status   int             `json:"status"`
	Body     json.RawMessage `json:"body,omitempty"`
}

// Server is the simulator. It is an http.Handler; it is safe for concurrent use.
type Server struct {
	cfg     Config
	api     *http.ServeMux
	control *http.ServeMux
	limit   *slidingWindow // nil when off

	mu       sync.Mutex
	requests []Request
	faults   Faults
	calls    uint64 // API calls that reached the fault stage, for FailRate
	tokens   map[string]time.Time
	refresh  map[string]time.Time
	st       state
}

// New returns a simulator for cfg, with the defaults for anything left empty.
func New(cfg Config) *Server {
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	def(&cfg.SiteID, DefaultSiteID)
	def(&cfg.Email, DefaultEmail)
	def(&cfg.APIKey, DefaultAPIKey)
	def(&cfg.Password, DefaultPassword)
	def(&cfg.ClientID, DefaultClientID)
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.RateLimit.Calls == 0 {
		cfg.RateLimit.Calls = DefaultCalls
	}
	if cfg.RateLimit.Per <= 0 {
		cfg.RateLimit.Per = DefaultPer
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{
		cfg:     cfg,
		faults:  cfg.Faults,
		tokens:  map[string]time.Time{},
		refresh: map[string]time.Time{},
		st:      newState(),
	}
	if cfg.RateLimit.Calls > 0 {
		s.limit = newSlidingWindow(cfg.RateLimit.Calls, cfg.RateLimit.Per)
	}
	s.api = http.NewServeMux()
	s.routes(s.api)
	s.control = http.NewServeMux()
	s.controlRoutes(s.control)
	return s
}

// Credentials returns the site id, email and API key the simulator accepts.
func (s *Server) Credentials() (siteID, email, apiKey string) {
	return s.cfg.SiteID, s.cfg.Email, s.cfg.APIKey
}

// OAuth returns the email, password and client id the password grant accepts.
func (s *Server) OAuth() (email, password, clientID string) {
	return s.cfg.Email, s.cfg.Password, s.cfg.ClientID
}

// RateLimit returns the per-IP budget in force (Calls < 0: none).
func (s *Server) RateLimit() IPRateLimit {
	if s.limit == nil {
		return IPRateLimit{Calls: -1}
	}
	return s.cfg.RateLimit
}

// Requests returns a copy of every recorded call, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// ServeHTTP answers control calls under /_sim/, and records, limits,
// faults, authenticates and routes every other call.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_sim/") {
		s.control.ServeHTTP(w, r)
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	ip := clientIP(r)
	defer func() {
		req := Request{
			Time:     s.cfg.Now().UTC(),
			ClientIP: ip,
			Method:   r.Method,
			Path:     r.URL.Path,
			Query:    r.URL.RawQuery,
			Status:   rec.status,
		}
		if len(body) > 0 && json.Valid(body) {
			req.Body = json.RawMessage(body)
		}
		s.mu.Lock()
		if len(s.requests) >= maxRequests {
			s.requests = append(s.requests[:0], s.requests[len(s.requests)-maxRequests+1:]...)
		}
		s.requests = append(s.requests, req)
		s.mu.Unlock()
	}()

	isToken := r.URL.Path == TokenPath
	if !isToken && !strings.HasPrefix(r.URL.Path, APIPrefix) {
		writeError(rec, http.StatusNotFound, 404000, "Resource not found.")
		return
	}
	if !s.injectFaults(rec, r, isToken) {
		return
	}
	if isToken {
		s.handleToken(rec, r)
		return
	}
	if !s.authenticate(rec, r) {
		return
	}
	s.api.ServeHTTP(rec, r)
}

// writeError answers with Comm100's error body {"code", "message"}.
func writeError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, map[string]any{"code": code, "message": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

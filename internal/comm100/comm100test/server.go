// Package comm100test is a Comm100 API simulator: an HTTP server that checks
// credentials and answers as Comm100 documents, keeps state, and records every
// call. Tests use it over real HTTP; `bot sim` runs it for trying the bot
// without a Comm100 tenant.
package comm100test

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Config chooses the credentials the simulator accepts.
type Config struct {
	SiteID string
	Email  string
	APIKey string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Default credentials of `bot sim`.
const (
	DefaultSiteID = "10000"
	DefaultEmail  = "bot@example.com"
	DefaultAPIKey = "sim-api-key"
)

// APIPrefix is the path under which the simulated API answers; the base URL
// to configure is the server's address followed by it.
const APIPrefix = "/v4/"

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
	cfg Config
	mux *http.ServeMux

	mu         sync.Mutex
	requests   []Request
	tickets    map[int64]*ticket
	nextTicket int64
}

// New returns a simulator that accepts cfg's credentials, with the defaults
// for any left empty.
func New(cfg Config) *Server {
	if cfg.SiteID == "" {
		cfg.SiteID = DefaultSiteID
	}
	if cfg.Email == "" {
		cfg.Email = DefaultEmail
	}
	if cfg.APIKey == "" {
		cfg.APIKey = DefaultAPIKey
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, tickets: map[int64]*ticket{}, nextTicket: 1000}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /_sim/requests", s.handleRequests)
	s.mux.HandleFunc("POST /v4/ticketing/tickets", s.handleCreateTicket)
	s.mux.HandleFunc("GET /v4/ticketing/tickets/{id}", s.handleGetTicket)
	return s
}

// Credentials returns the site id, email and API key the simulator accepts.
func (s *Server) Credentials() (siteID, email, apiKey string) {
	return s.cfg.SiteID, s.cfg.Email, s.cfg.APIKey
}

// Requests returns a copy of every recorded API call, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// ServeHTTP records API calls, checks auth, and routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_sim/") {
		s.mux.ServeHTTP(w, r)
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	defer func() {
		req := Request{
			Time:     s.cfg.Now().UTC(),
			ClientIP: clientIP(r),
			Method:   r.Method,
			Path:     r.URL.Path,
			Query:    r.URL.RawQuery,
			Status:   rec.status,
		}
		if json.Valid(body) {
			req.Body = json.RawMessage(body)
		}
		s.mu.Lock()
		s.requests = append(s.requests, req)
		s.mu.Unlock()
	}()
	if !strings.HasPrefix(r.URL.Path, APIPrefix) {
		writeError(rec, http.StatusNotFound, 404000, "Resource not found.")
		return
	}
	if !s.authenticate(rec, r) {
		return
	}
	s.mux.ServeHTTP(rec, r)
}

// authenticate checks API-key auth as Comm100 does: HTTP Basic with the agent
// email and API key, and the siteId query parameter on every call.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) bool {
	email, key, ok := r.BasicAuth()
	if !ok {
		writeError(w, http.StatusUnauthorized, 401000, "Authorization has been denied for this request.")
		return false
	}
	site := r.URL.Query().Get("siteId")
	if site == "" {
		writeError(w, http.StatusBadRequest, 400000, "Parameter 'siteId' is required.")
		return false
	}
	if subtle.ConstantTimeCompare([]byte(email), []byte(s.cfg.Email)) != 1 ||
		subtle.ConstantTimeCompare([]byte(key), []byte(s.cfg.APIKey)) != 1 ||
		site != s.cfg.SiteID {
		writeError(w, http.StatusUnauthorized, 401000, "Authorization has been denied for this request.")
		return false
	}
	return true
}

func (s *Server) handleRequests(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Requests())
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

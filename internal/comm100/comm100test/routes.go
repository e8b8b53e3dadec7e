package comm100test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// routes registers the simulated API, relative to APIPrefix.
func (s *Server) routes(mux *http.ServeMux) {
	p := strings.TrimSuffix(APIPrefix, "/")
	handle := func(pattern string, h http.HandlerFunc) {
		method, path, _ := strings.Cut(pattern, " ")
		mux.HandleFunc(method+" "+p+path, h)
	}
	handle("POST /ticketing/tickets", s.handleCreateTicket)
	handle("GET /ticketing/tickets/{id}", s.handleGetTicket)
	handle("PUT /ticketing/tickets/{id}", s.handleUpdateTicket)
	handle("POST /ticketing/messages", s.handleCreateMessage)
	handle("POST /ticketing/notes", s.handleCreateNote)
	handle("GET /ticketing/fields", s.handleTicketFields)
	handle("GET /ticketing/tags", s.handleTags)
	handle("POST /ticketing/tags", s.handleCreateTag)

	contacts := "/contact/contacts"
	if s.cfg.LegacyContacts {
		contacts = "/global/contacts"
	}
	handle("GET "+contacts, s.handleFindContacts)
	handle("POST "+contacts, s.handleCreateContact)
	handle("PUT "+contacts+"/{id}", s.handleUpdateContact)

	handle("GET /livechat/chats/{id}", s.handleGetChat)
	handle("POST /livechat/chats:search", s.handleSearchChats)
	handle("POST /livechat/chats:Search", s.handleSearchChats)
	handle("POST /livechat/chats/{action}", s.handleAttachChat)
	handle("GET /livechat/offlineMessages/{id}", s.handleGetOfflineMessage)
	handle("POST /livechat/offlineMessages/{action}", s.handleAttachOfflineMessage)

	handle("GET /livechat/agents", s.handleLiveChatAgents)
	handle("PUT /livechat/agents/{id}", s.handleSetAgentStatus)
	handle("GET /global/agents", s.handleAgents)
	handle("GET /global/departments", s.handleDepartments)
	handle("GET /livechat/campaigns", s.handleCampaigns)
	handle("GET /global/visitors", s.handleVisitors)

	handle("GET /livechat/webhooks", s.handleWebhooks)
	handle("POST /livechat/webhooks", s.handleCreateWebhook)
	handle("PUT /livechat/webhooks/{id}", s.handleUpdateWebhook)
	handle("DELETE /livechat/webhooks/{id}", s.handleDeleteWebhook)

	mux.HandleFunc(APIPrefix, func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, 404000, "Resource not found.")
	})
}

// errBadRequest is a 400 answer with Comm100's body.
type errBadRequest struct{ msg string }

func (e errBadRequest) Error() string { return e.msg }

func badRequest(format string, args ...any) error { return errBadRequest{fmt.Sprintf(format, args...)} }

// decodeBody reads a JSON request body into v.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	data := new(bytes.Buffer)
	_, _ = data.ReadFrom(r.Body)
	if err := json.Unmarshal(data.Bytes(), v); err != nil {
		var be errBadRequest
		if errors.As(err, &be) {
			writeError(w, http.StatusBadRequest, 400000, be.msg)
			return false
		}
		writeError(w, http.StatusBadRequest, 400000, "The request body is not valid JSON.")
		return false
	}
	return true
}

// intID is an integer id that a request may send as a number or a string.
type intID int64

func (id *intID) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(bytes.TrimSpace(b)), `"`)
	if s == "" || s == "null" {
		*id = 0
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 {
		return badRequest("Id %s is not a valid integer id.", b)
	}
	*id = intID(n)
	return nil
}

// pathInt reads an integer id from the path; ok is false if it is not one.
func pathInt(r *http.Request, name string) (int64, bool) {
	n, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	return n, err == nil && n > 0
}

// pageOf reads pageIndex (1-based, default 1) and pageSize (default
// defaultSize) from the query; on a bad value it answers 400 and reports false.
func pageOf(w http.ResponseWriter, q url.Values, defaultSize int) (index, size int, ok bool) {
	index, size = 1, defaultSize
	for _, p := range []struct {
		name string
		to   *int
	}{{"pageIndex", &index}, {"pageSize", &size}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, 400000, "Parameter '"+p.name+"' must be a positive integer.")
			return 0, 0, false
		}
		*p.to = n
	}
	return index, size, true
}

// writePage answers one page of items under key, as Comm100 paginates
// lists: pageIndex (1-based) and pageSize (default 10) from the query, and
// nextPage, previousPage (URLs or null) and total (the visitor page's
// answer: {"visitors": [...], "nextPage": null, "previousPage": null, "total": 1}).
func writePage[T any](w http.ResponseWriter, r *http.Request, key string, items []T) {
	q := r.URL.Query()
	index, size, ok := pageOf(w, q, 10)
	if !ok {
		return
	}
	from := min((index-1)*size, len(items))
	to := min(from+size, len(items))
	pageURL := func(i int) *string {
		u := url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path}
		if r.TLS != nil {
			u.Scheme = "https"
		}
		qq := url.Values{}
		for k, v := range q {
			qq[k] = v
		}
		qq.Set("pageIndex", strconv.Itoa(i))
		u.RawQuery = qq.Encode()
		s := u.String()
		return &s
	}
	var next, prev *string
	if to < len(items) {
		next = pageURL(index + 1)
	}
	if index > 1 {
		prev = pageURL(index - 1)
	}
	page := items[from:to]
	if page == nil {
		page = []T{}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		key:            page,
		"nextPage":     next,
		"previousPage": prev,
		"total":        len(items),
	})
}

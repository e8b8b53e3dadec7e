package comm100test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// findChatLocked finds a chat by its integer id or its GUID: GET
// livechat/chats/{id} takes both (Comm100's own API tests fetch the chat by
// the GUID its webhook carries, then use the integer id the answer has).
func (s *Server) findChatLocked(id string) *ChatRecord {
	if n, err := strconv.ParseInt(id, 10, 64); err == nil {
		return find(s.st.chats, func(c *ChatRecord) bool { return c.ID == n })
	}
	return find(s.st.chats, func(c *ChatRecord) bool { return sameGUID(c.GUID, id) })
}

func (s *Server) handleGetChat(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	c := s.findChatLocked(r.PathValue("id"))
	var cp ChatRecord
	if c != nil {
		cp = *c
	}
	s.mu.Unlock()
	if c == nil {
		writeError(w, http.StatusNotFound, 404000, "Chat not found.")
		return
	}
	writeJSON(w, http.StatusOK, cp)
}

// searchFilter is one entry of "filters" in a :Search body, as the search
// pages (dash15.comm100.io/doc/LiveChat/agentPrivateMessage) and Comm100's
// own API tests send it.
type searchFilter struct {
	Name     string   `json:"name"`
	Operator string   `json:"operator"`
	Value    []string `json:"value"`
}

// chatFilters are the filter names the simulator knows for chats: departmentId
// (Comm100's API tests, operators "is" and "ignored"), and time and keywords
// (the agent private message search sample, operator "is").
var chatFilters = []string{"departmentId", "time", "keywords"}

// handleSearchChats is POST livechat/chats:Search: "filters" in the body;
// pageIndex, pageSize, sortBy, sortOrder and include in the query, as on
// the search pages. Anything else in the body is refused. The answer is
// {"total", "pageCount", "list", "pageIndex", "pageSize"}, 50 a page by
// default (Comm100's API tests).
func (s *Server) handleSearchChats(w http.ResponseWriter, r *http.Request) {
	var raw map[string]json.RawMessage
	if !decodeBody(w, r, &raw) {
		return
	}
	for k := range raw {
		if k != "filters" {
			writeError(w, http.StatusBadRequest, 400000,
				"Parameter '"+k+"' is not a body parameter of chats:Search; the body holds 'filters', and pageIndex, pageSize, sortBy, sortOrder and include go in the query.")
			return
		}
	}
	var filters []searchFilter
	if f, ok := raw["filters"]; ok {
		dec := json.NewDecoder(bytes.NewReader(f))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&filters); err != nil {
			writeError(w, http.StatusBadRequest, 400000, "Parameter 'filters' must be a list of {name, operator, value}.")
			return
		}
	}
	q := r.URL.Query()
	index, size, ok := pageOf(w, q, 50)
	if !ok {
		return
	}
	if o := q.Get("sortOrder"); o != "" && o != "asc" && o != "desc" {
		writeError(w, http.StatusBadRequest, 400000, "Parameter 'sortOrder' must be asc or desc.")
		return
	}
	match, msg := chatMatcher(filters)
	if msg != "" {
		writeError(w, http.StatusBadRequest, 400000, msg)
		return
	}
	s.mu.Lock()
	var all []ChatRecord
	for _, c := range s.st.chats {
		if match(c) {
			all = append(all, *c)
		}
	}
	s.mu.Unlock()
	if q.Get("sortOrder") == "desc" {
		slices.Reverse(all)
	}
	from := min((index-1)*size, len(all))
	to := min(from+size, len(all))
	list := all[from:to]
	if list == nil {
		list = []ChatRecord{}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"total": len(all), "pageCount": (len(all) + size - 1) / size, "list": list, "pageIndex": index, "pageSize": size,
	})
}

// chatMatcher compiles the filters, or says what is wrong with them.
func chatMatcher(filters []searchFilter) (func(*ChatRecord) bool, string) {
	var tests []func(*ChatRecord) bool
	for i, f := range filters {
		if !slices.Contains(chatFilters, f.Name) {
			return nil, "Filter '" + f.Name + "' is not a chat filter; known: " + strings.Join(chatFilters, ", ") + "."
		}
		if f.Operator == "ignored" {
			continue
		}
		if f.Operator != "is" {
			return nil, "Filter '" + f.Name + "': operator must be is or ignored."
		}
		switch f.Name {
		case "departmentId":
			vals := f.Value
			tests = append(tests, func(c *ChatRecord) bool { return slices.Contains(vals, c.DepartmentID) })
		case "keywords":
			vals := f.Value
			tests = append(tests, func(c *ChatRecord) bool {
				return slices.ContainsFunc(vals, func(k string) bool {
					return strings.Contains(strings.ToLower(c.Messages), strings.ToLower(k))
				})
			})
		case "time":
			if len(f.Value) != 2 {
				return nil, "Filter 'time' wants two values, from and to (filters[" + strconv.Itoa(i) + "])."
			}
			from, err1 := time.Parse(time.RFC3339Nano, f.Value[0])
			to, err2 := time.Parse(time.RFC3339Nano, f.Value[1])
			if err1 != nil || err2 != nil {
				return nil, "Filter 'time' wants ISO-8601 times."
			}
			tests = append(tests, func(c *ChatRecord) bool { return !c.StartTime.Before(from) && c.StartTime.Before(to) })
		}
	}
	return func(c *ChatRecord) bool {
		for _, t := range tests {
			if !t(c) {
				return false
			}
		}
		return true
	}, ""
}

// attachTarget reads "{id}:AttachToTicket" and the {"ticketId"} body. The id
// must be the integer id: the pages document the GUID for GET only.
func attachTarget(w http.ResponseWriter, r *http.Request) (id int64, ticketID int64, ok bool) {
	seg, action, found := strings.Cut(r.PathValue("action"), ":")
	if !found || action != "AttachToTicket" {
		writeError(w, http.StatusNotFound, 404000, "Resource not found.")
		return 0, 0, false
	}
	n, err := strconv.ParseInt(seg, 10, 64)
	if err != nil || n < 1 {
		writeError(w, http.StatusNotFound, 404000, "Resource not found: the id of :AttachToTicket is the integer id.")
		return 0, 0, false
	}
	var in struct {
		TicketID intID `json:"ticketId"`
	}
	if !decodeBody(w, r, &in) {
		return 0, 0, false
	}
	if in.TicketID == 0 {
		writeError(w, http.StatusBadRequest, 400000, "Parameter 'ticketId' is required.")
		return 0, 0, false
	}
	return n, int64(in.TicketID), true
}

// handleAttachChat is POST livechat/chats/{id}:AttachToTicket; the chat
// records the ticket as preChatTicketId ("Id of the ticket to which this chat
// is attached").
func (s *Server) handleAttachChat(w http.ResponseWriter, r *http.Request) {
	id, ticketID, ok := attachTarget(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := find(s.st.chats, func(c *ChatRecord) bool { return c.ID == id })
	if c == nil {
		writeError(w, http.StatusNotFound, 404000, "Chat not found.")
		return
	}
	if s.ticketLocked(ticketID) == nil {
		writeError(w, http.StatusNotFound, 404000, "Ticket not found.")
		return
	}
	c.PreChatTicketID = ticketID
	w.WriteHeader(http.StatusNoContent)
}

// findOfflineLocked finds an offline message by integer id or GUID: "Id of
// the offline message or Guid of the offline message" (the offline message page).
func (s *Server) findOfflineLocked(id string) *OfflineMessageRecord {
	if n, err := strconv.ParseInt(id, 10, 64); err == nil {
		return find(s.st.offlineMessages, func(m *OfflineMessageRecord) bool { return m.ID == n })
	}
	return find(s.st.offlineMessages, func(m *OfflineMessageRecord) bool { return sameGUID(m.GUID, id) })
}

func (s *Server) handleGetOfflineMessage(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	m := s.findOfflineLocked(r.PathValue("id"))
	var cp OfflineMessageRecord
	if m != nil {
		cp = *m
	}
	s.mu.Unlock()
	if m == nil {
		writeError(w, http.StatusNotFound, 404000, "Offline message not found.")
		return
	}
	writeJSON(w, http.StatusOK, cp)
}

func (s *Server) handleAttachOfflineMessage(w http.ResponseWriter, r *http.Request) {
	id, ticketID, ok := attachTarget(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := find(s.st.offlineMessages, func(m *OfflineMessageRecord) bool { return m.ID == id })
	if m == nil {
		writeError(w, http.StatusNotFound, 404000, "Offline message not found.")
		return
	}
	if s.ticketLocked(ticketID) == nil {
		writeError(w, http.StatusNotFound, 404000, "Ticket not found.")
		return
	}
	m.TicketID = ticketID
	w.WriteHeader(http.StatusNoContent)
}

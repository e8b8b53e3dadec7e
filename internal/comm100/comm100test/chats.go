package comm100test

import (
	"net/http"
	"slices"
	"strings"
	"time"
)

func (s *Server) handleGetChat(w http.ResponseWriter, r *http.Request) {
	id, _ := pathInt(r, "id")
	s.mu.Lock()
	c := find(s.st.chats, func(c *Chat) bool { return c.ID == id })
	var cp Chat
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

// handleSearchChats is POST livechat/chats:search. timeFrom is required;
// the answer is {"list": [...], "total": n}.
func (s *Server) handleSearchChats(w http.ResponseWriter, r *http.Request) {
	var in struct {
		TimeFrom  *time.Time `json:"timeFrom"`
		TimeTo    *time.Time `json:"timeTo"`
		VisitorID string     `json:"visitorId"`
		AgentID   string     `json:"agentId"`
		PageIndex int        `json:"pageIndex"`
		PageSize  int        `json:"pageSize"`
	}
	if !decodeBody(w, r, &in) {
		return
	}
	switch {
	case in.TimeFrom == nil || in.TimeFrom.IsZero():
		writeError(w, http.StatusBadRequest, 400000, "Parameter 'timeFrom' is required.")
		return
	case in.PageIndex < 0:
		writeError(w, http.StatusBadRequest, 400000, "Parameter 'pageIndex' must be a positive integer.")
		return
	case in.PageSize < 0 || in.PageSize > 100:
		writeError(w, http.StatusBadRequest, 400000, "Parameter 'pageSize' must be an integer from 1 to 100.")
		return
	}
	index, size := max(in.PageIndex, 1), in.PageSize
	if size == 0 {
		size = 10
	}
	s.mu.Lock()
	var all []Chat
	for _, c := range s.st.chats {
		switch {
		case c.StartTime.Before(*in.TimeFrom):
		case in.TimeTo != nil && !in.TimeTo.IsZero() && !c.StartTime.Before(*in.TimeTo):
		case in.VisitorID != "" && c.VisitorID != in.VisitorID:
		case in.AgentID != "" && !slices.Contains(c.AgentIDs, in.AgentID):
		default:
			all = append(all, *c)
		}
	}
	s.mu.Unlock()
	from := min((index-1)*size, len(all))
	to := min(from+size, len(all))
	list := all[from:to]
	if list == nil {
		list = []Chat{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"list": list, "total": len(all)})
}

// attachTarget reads "{id}:AttachToTicket" and the {"ticketId"} body.
func attachTarget(w http.ResponseWriter, r *http.Request) (id string, ticketID int64, ok bool) {
	id, action, found := strings.Cut(r.PathValue("action"), ":")
	if !found || action != "AttachToTicket" {
		writeError(w, http.StatusNotFound, 404000, "Resource not found.")
		return "", 0, false
	}
	var in struct {
		TicketID intID `json:"ticketId"`
	}
	if !decodeBody(w, r, &in) {
		return "", 0, false
	}
	if in.TicketID == 0 {
		writeError(w, http.StatusBadRequest, 400000, "Parameter 'ticketId' is required.")
		return "", 0, false
	}
	return id, int64(in.TicketID), true
}

func (s *Server) handleAttachChat(w http.ResponseWriter, r *http.Request) {
	id, ticketID, ok := attachTarget(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := find(s.st.chats, func(c *Chat) bool { return formatInt(c.ID) == id })
	if c == nil {
		writeError(w, http.StatusNotFound, 404000, "Chat not found.")
		return
	}
	if s.ticketLocked(ticketID) == nil {
		writeError(w, http.StatusNotFound, 404000, "Ticket not found.")
		return
	}
	c.TicketID = ticketID
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleGetOfflineMessage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	m := find(s.st.offlineMessages, func(m *OfflineMessage) bool { return m.ID == id })
	var cp OfflineMessage
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
	m := find(s.st.offlineMessages, func(m *OfflineMessage) bool { return m.ID == id })
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

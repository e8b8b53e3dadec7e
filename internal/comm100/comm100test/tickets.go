package comm100test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

type ticket struct {
	ID                   int64          `json:"id"`
	Subject              string         `json:"subject"`
	Priority             string         `json:"priority"`
	Status               string         `json:"status"`
	AssigneeID           string         `json:"assigneeId,omitempty"`
	DepartmentAssigneeID string         `json:"departmentAssigneeId,omitempty"`
	ChannelID            string         `json:"channelId,omitempty"`
	ContactOrVisitorID   string         `json:"contactOrVisitorId,omitempty"`
	ContactOrVisitorType string         `json:"contactOrVisitorType,omitempty"`
	CustomFields         map[string]any `json:"customFields,omitempty"`
	TagIDs               []string       `json:"tagIds"`
	CreatedTime          time.Time      `json:"createdTime"`
	LastActivityTime     time.Time      `json:"lastActivityTime"`
}

var (
	ticketPriorities = []string{"urgent", "high", "normal", "low"}
	ticketStatuses   = []string{"new", "pendingInternal", "pendingExternal", "onHold", "resolved"}
)

func (s *Server) handleCreateTicket(w http.ResponseWriter, r *http.Request) {
	var in struct {
		ticket
		Message *struct {
			Type string `json:"type"`
			Body string `json:"body"`
		} `json:"message"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeError(w, http.StatusBadRequest, 400000, "The request body is not valid JSON.")
		return
	}
	t := in.ticket
	if strings.TrimSpace(t.Subject) == "" {
		writeError(w, http.StatusBadRequest, 400000, "Parameter 'subject' is required.")
		return
	}
	if t.Priority == "" {
		t.Priority = "normal"
	}
	if !oneOf(t.Priority, ticketPriorities) {
		writeError(w, http.StatusBadRequest, 400000, "Parameter 'priority' must be one of urgent, high, normal, low.")
		return
	}
	if t.Status == "" {
		t.Status = "new"
	}
	if !oneOf(t.Status, ticketStatuses) {
		writeError(w, http.StatusBadRequest, 400000, "Parameter 'status' must be one of new, pendingInternal, pendingExternal, onHold, resolved.")
		return
	}
	if t.TagIDs == nil {
		t.TagIDs = []string{}
	}
	now := s.cfg.Now().UTC()
	s.mu.Lock()
	s.nextTicket++
	t.ID = s.nextTicket
	t.CreatedTime, t.LastActivityTime = now, now
	s.tickets[t.ID] = &t
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, t)
}

func (s *Server) handleGetTicket(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	s.mu.Lock()
	t, ok := s.tickets[id]
	var cp ticket
	if ok {
		cp = *t
	}
	s.mu.Unlock()
	if err != nil || !ok {
		writeError(w, http.StatusNotFound, 404000, "Ticket not found.")
		return
	}
	writeJSON(w, http.StatusOK, cp)
}

func oneOf(s string, set []string) bool {
	for _, v := range set {
		if s == v {
			return true
		}
	}
	return false
}

package comm100test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
)

var (
	ticketPriorities = []string{"urgent", "high", "normal", "low"}
	ticketStatuses   = []string{"new", "pendingInternal", "pendingExternal", "onHold", "resolved"}
	messageTypes     = []string{"text", "html"}
)

func (s *Server) handleCreateTicket(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Ticket
		ID      json.RawMessage `json:"id"` // ignored: the server gives ids
		Message *struct {
			Type string `json:"type"`
			Body string `json:"body"`
		} `json:"message"`
	}
	if !decodeBody(w, r, &in) {
		return
	}
	t := in.Ticket
	if strings.TrimSpace(t.Subject) == "" {
		writeError(w, http.StatusBadRequest, 400000, "Parameter 'subject' is required.")
		return
	}
	if t.Priority == "" {
		t.Priority = "normal"
	}
	if t.Status == "" {
		t.Status = "new"
	}
	if msg := checkTicket(t.Priority, t.Status); msg != "" {
		writeError(w, http.StatusBadRequest, 400000, msg)
		return
	}
	if in.Message != nil && in.Message.Type != "" && !slices.Contains(messageTypes, in.Message.Type) {
		writeError(w, http.StatusBadRequest, 400000, "Parameter 'message.type' must be text or html.")
		return
	}
	if t.TagIDs == nil {
		t.TagIDs = []string{}
	}
	now := s.cfg.Now().UTC()
	s.mu.Lock()
	s.st.nextTicket++
	t.ID = s.st.nextTicket
	t.CreatedTime, t.LastActivityTime = now, now
	s.st.tickets = append(s.st.tickets, &t)
	if in.Message != nil && in.Message.Body != "" {
		typ := in.Message.Type
		if typ == "" {
			typ = "text"
		}
		s.st.messages = append(s.st.messages, &Message{ID: newGUID(), TicketID: t.ID, Type: typ, Body: in.Message.Body, CreatedTime: now})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, t)
}

func checkTicket(priority, status string) string {
	if !slices.Contains(ticketPriorities, priority) {
		return "Parameter 'priority' must be one of urgent, high, normal, low."
	}
	if !slices.Contains(ticketStatuses, status) {
		return "Parameter 'status' must be one of new, pendingInternal, pendingExternal, onHold, resolved."
	}
	return ""
}

// ticketLocked finds a ticket; s.mu must be held.
func (s *Server) ticketLocked(id int64) *Ticket {
	return find(s.st.tickets, func(t *Ticket) bool { return t.ID == id })
}

func (s *Server) handleGetTicket(w http.ResponseWriter, r *http.Request) {
	id, _ := pathInt(r, "id")
	s.mu.Lock()
	t := s.ticketLocked(id)
	var cp Ticket
	if t != nil {
		cp = *t
	}
	s.mu.Unlock()
	if t == nil {
		writeError(w, http.StatusNotFound, 404000, "Ticket not found.")
		return
	}
	writeJSON(w, http.StatusOK, cp)
}

// handleUpdateTicket is PUT ticketing/tickets/{id}. The simulator treats PUT
// as partial: fields left out keep their value.
func (s *Server) handleUpdateTicket(w http.ResponseWriter, r *http.Request) {
	id, _ := pathInt(r, "id")
	var in struct {
		Subject              *string        `json:"subject"`
		Priority             *string        `json:"priority"`
		Status               *string        `json:"status"`
		AssigneeID           *string        `json:"assigneeId"`
		DepartmentAssigneeID *string        `json:"departmentAssigneeId"`
		CustomFields         map[string]any `json:"customFields"`
		TagIDs               *[]string      `json:"tagIds"`
	}
	if !decodeBody(w, r, &in) {
		return
	}
	if in.Subject != nil && strings.TrimSpace(*in.Subject) == "" {
		writeError(w, http.StatusBadRequest, 400000, "Parameter 'subject' must not be empty.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.ticketLocked(id)
	if t == nil {
		writeError(w, http.StatusNotFound, 404000, "Ticket not found.")
		return
	}
	u := *t
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&u.Subject, in.Subject)
	set(&u.Priority, in.Priority)
	set(&u.Status, in.Status)
	set(&u.AssigneeID, in.AssigneeID)
	set(&u.DepartmentAssigneeID, in.DepartmentAssigneeID)
	if in.CustomFields != nil {
		cf := map[string]any{}
		for k, v := range u.CustomFields {
			cf[k] = v
		}
		for k, v := range in.CustomFields {
			cf[k] = v
		}
		u.CustomFields = cf
	}
	if in.TagIDs != nil {
		for _, tid := range *in.TagIDs {
			if find(s.st.tags, func(t *Tag) bool { return t.ID == tid }) == nil {
				writeError(w, http.StatusBadRequest, 400000, "Tag '"+tid+"' does not exist.")
				return
			}
		}
		u.TagIDs = append([]string{}, (*in.TagIDs)...)
	}
	if msg := checkTicket(u.Priority, u.Status); msg != "" {
		writeError(w, http.StatusBadRequest, 400000, msg)
		return
	}
	u.LastActivityTime = s.cfg.Now().UTC()
	*t = u
	writeJSON(w, http.StatusOK, u)
}

func (s *Server) handleCreateMessage(w http.ResponseWriter, r *http.Request) {
	var in struct {
		TicketID intID  `json:"ticketId"`
		Type     string `json:"type"`
		Body     string `json:"body"`
	}
	if !decodeBody(w, r, &in) {
		return
	}
	switch {
	case in.TicketID == 0:
		writeError(w, http.StatusBadRequest, 400000, "Parameter 'ticketId' is required.")
		return
	case strings.TrimSpace(in.Body) == "":
		writeError(w, http.StatusBadRequest, 400000, "Parameter 'body' is required.")
		return
	case in.Type != "" && !slices.Contains(messageTypes, in.Type):
		writeError(w, http.StatusBadRequest, 400000, "Parameter 'type' must be text or html.")
		return
	}
	if in.Type == "" {
		in.Type = "text"
	}
	now := s.cfg.Now().UTC()
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.ticketLocked(int64(in.TicketID))
	if t == nil {
		writeError(w, http.StatusNotFound, 404000, "Ticket not found.")
		return
	}
	m := &Message{ID: newGUID(), TicketID: t.ID, Type: in.Type, Body: in.Body, CreatedTime: now}
	s.st.messages = append(s.st.messages, m)
	t.LastActivityTime = now
	writeJSON(w, http.StatusCreated, m)
}

func (s *Server) handleCreateNote(w http.ResponseWriter, r *http.Request) {
	var in struct {
		TicketID intID  `json:"ticketId"`
		Text     string `json:"text"`
	}
	if !decodeBody(w, r, &in) {
		return
	}
	switch {
	case in.TicketID == 0:
		writeError(w, http.StatusBadRequest, 400000, "Parameter 'ticketId' is required.")
		return
	case strings.TrimSpace(in.Text) == "":
		writeError(w, http.StatusBadRequest, 400000, "Parameter 'text' is required.")
		return
	}
	now := s.cfg.Now().UTC()
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.ticketLocked(int64(in.TicketID))
	if t == nil {
		writeError(w, http.StatusNotFound, 404000, "Ticket not found.")
		return
	}
	n := &Note{ID: newGUID(), TicketID: t.ID, Text: in.Text, CreatedTime: now}
	s.st.notes = append(s.st.notes, n)
	writeJSON(w, http.StatusCreated, n)
}

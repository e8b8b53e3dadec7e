package comm100test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Allowed values, as the pages give them.
var (
	// developer.comm100.com/docs/server-api-ticketing-ticket, Ticket JSON Format.
	ticketPriorities = []string{"urgent", "high", "normal", "low"}
	ticketStatuses   = []string{"new", "pendingInternal", "pendingExternal", "onHold", "resolved"}
	assigneeTypes    = []string{"agent", "chatbot"}
	contactTypes     = []string{"contact", "visitor", "chatbot", "channelAccount", "system", "agent"}
	// dash15.comm100.io/doc/Ticketing/ticketingMessage, Message JSON Format.
	sentByTypes  = []string{"contact", "visitor", "chatbot", "channelAccount", "system", "agent", "outreachCampaign"}
	messageTypes = []string{"text", "html", "video", "audio", "image", "file", "location", "quickReply", "webView"}
)

// bodyDataURL is the prefix of a message body or note text sent in base64
// (ticketingMessage and ticketingNote pages: "add 'data:text/plain;base64,'
// before the content").
const bodyDataURL = "data:text/plain;base64,"

// decodeText turns a base64 data URL back into text; plain text is kept.
func decodeText(field, s string) (string, error) {
	rest, ok := strings.CutPrefix(s, bodyDataURL)
	if !ok {
		return s, nil
	}
	b, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return "", badRequest("Parameter '%s' is not valid base64 after '%s'.", field, bodyDataURL)
	}
	return string(b), nil
}

// messageIn is a message of "messages" at ticket creation, or the body of
// POST ticketing/messages.
type messageIn struct {
	TicketID    intID           `json:"ticketId"`
	SentByType  string          `json:"sentByType"`
	SentByID    string          `json:"sentById"`
	ChannelID   string          `json:"channelId"`
	Type        string          `json:"type"`
	Body        *string         `json:"body"`
	Metadata    json.RawMessage `json:"metadata"`
	Attachments []any           `json:"attachments"`
}

// check validates the message and returns its body as text.
func (m messageIn) check(prefix string) (string, error) {
	switch {
	case m.SentByType != "" && !slices.Contains(sentByTypes, m.SentByType):
		return "", badRequest("Parameter '%ssentByType' must be one of %s.", prefix, strings.Join(sentByTypes, ", "))
	case m.SentByID != "" && !isGUID(m.SentByID):
		return "", badRequest("Parameter '%ssentById' must be a GUID.", prefix)
	case m.Type != "" && !slices.Contains(messageTypes, m.Type):
		return "", badRequest("Parameter '%stype' must be one of %s.", prefix, strings.Join(messageTypes, ", "))
	case m.Body == nil || strings.TrimSpace(*m.Body) == "":
		return "", badRequest("Parameter '%sbody' is required.", prefix)
	}
	return decodeText(prefix+"body", *m.Body)
}

// ticketIn is the body of POST ticketing/tickets and PUT ticketing/tickets/{id}:
// the fields of the Ticket JSON Format and those Comm100's own API tests send
// (agentLanguage, contactLanguage, messages).
type ticketIn struct {
	Subject              *string         `json:"subject"`
	Priority             *string         `json:"priority"`
	Status               *string         `json:"status"`
	ChannelID            *string         `json:"channelId"`
	AssigneeType         *string         `json:"assigneeType"`
	AssigneeID           *string         `json:"assigneeId"`
	DepartmentAssigneeID *string         `json:"departmentAssigneeId"`
	ContactOrVisitorID   *string         `json:"contactOrVisitorId"`
	ContactOrVisitorType *string         `json:"contactOrVisitorType"`
	CustomFields         map[string]any  `json:"customFields"`
	TagIDs               *[]string       `json:"tagIds"`
	AgentLanguage        string          `json:"agentLanguage"`
	ContactLanguage      string          `json:"contactLanguage"`
	Messages             []messageIn     `json:"messages"`
	Message              json.RawMessage `json:"message"`
	ID                   json.RawMessage `json:"id"` // ignored: the server gives ids
}

// check validates what the pages say about the fields sent; s.mu must be held.
func (in *ticketIn) check(st *state) error {
	if in.Message != nil {
		// The first message goes in "messages" (Comm100's API tests); a
		// singular "message" is the v2 API's shape and is not a v4 field.
		return badRequest("Parameter 'message' is not a ticket field; send the first message in 'messages': " +
			`[{"sentByType":"agent","channelId":"Internal","type":"text","body":"...","attachments":[]}].`)
	}
	in.Subject = trimmed(in.Subject)
	switch {
	case in.Subject != nil && *in.Subject == "":
		return badRequest("Parameter 'subject' must not be empty.")
	case in.Priority != nil && !slices.Contains(ticketPriorities, *in.Priority):
		return badRequest("Parameter 'priority' must be one of %s.", strings.Join(ticketPriorities, ", "))
	case in.Status != nil && !slices.Contains(ticketStatuses, *in.Status):
		return badRequest("Parameter 'status' must be one of %s.", strings.Join(ticketStatuses, ", "))
	case in.AssigneeType != nil && !slices.Contains(assigneeTypes, *in.AssigneeType):
		return badRequest("Parameter 'assigneeType' must be one of %s.", strings.Join(assigneeTypes, ", "))
	case in.ContactOrVisitorType != nil && !slices.Contains(contactTypes, *in.ContactOrVisitorType):
		return badRequest("Parameter 'contactOrVisitorType' must be one of %s.", strings.Join(contactTypes, ", "))
	}
	for name, v := range map[string]*string{
		"assigneeId": in.AssigneeID, "departmentAssigneeId": in.DepartmentAssigneeID, "contactOrVisitorId": in.ContactOrVisitorID,
	} {
		if v != nil && *v != "" && !isGUID(*v) {
			return badRequest("Parameter '%s' must be a GUID.", name)
		}
	}
	// Custom field values are keyed by the field's id (the Field page; the
	// ticket-trigger payloads of the knowledge base), never by its name.
	for k := range in.CustomFields {
		f := find(st.fields, func(f *TicketFieldRecord) bool { return sameGUID(f.ID, k) })
		switch {
		case f == nil && !isGUID(k):
			return badRequest("Custom field '%s' is not a field id; customFields are keyed by the id (a GUID) GET ticketing/fields gives.", k)
		case f == nil:
			return badRequest("Custom field '%s' does not exist.", k)
		case f.IsSystem:
			return badRequest("Field '%s' (%s) is a system field, not a custom field.", k, f.Name)
		}
	}
	if in.TagIDs != nil {
		for _, tid := range *in.TagIDs {
			if find(st.tags, func(t *TagRecord) bool { return t.ID == tid }) == nil {
				return badRequest("Tag '%s' does not exist.", tid)
			}
		}
	}
	for i := range in.Messages {
		if _, err := in.Messages[i].check(fmt.Sprintf("messages[%d].", i)); err != nil {
			return err
		}
	}
	return nil
}

func trimmed(p *string) *string {
	if p == nil {
		return nil
	}
	s := strings.TrimSpace(*p)
	return &s
}

func (s *Server) handleCreateTicket(w http.ResponseWriter, r *http.Request) {
	var in ticketIn
	if !decodeBody(w, r, &in) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := in.check(&s.st); err != nil {
		writeError(w, http.StatusBadRequest, 400000, err.Error())
		return
	}
	if in.Subject == nil {
		// Comm100/api-reference (the ticket API's design) marks subject required.
		writeError(w, http.StatusBadRequest, 400000, "Parameter 'subject' is required.")
		return
	}
	t := TicketRecord{Subject: *in.Subject, Priority: "normal", Status: "new", ChannelID: "Internal",
		ContactOrVisitorID: zeroGUID, CustomFields: map[string]any{}, TagIDs: []string{}}
	apply(&t, &in)
	now := s.cfg.Now().UTC()
	s.st.nextTicket++
	t.ID = s.st.nextTicket
	t.CreatedTime, t.LastUpdatedTime = now, now
	s.st.tickets = append(s.st.tickets, &t)
	for _, m := range in.Messages {
		body, _ := m.check("")
		s.st.messages = append(s.st.messages, &MessageRecord{ID: newGUID(), TicketID: t.ID, SentByType: or(m.SentByType, "agent"),
			ChannelID: or(m.ChannelID, t.ChannelID), Type: or(m.Type, "text"), Body: body, Time: now})
	}
	writeJSON(w, http.StatusCreated, t)
}

const zeroGUID = "00000000-0000-0000-0000-000000000000"

// apply sets the fields sent on t; custom fields sent are merged.
func apply(t *TicketRecord, in *ticketIn) {
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&t.Subject, in.Subject)
	set(&t.Priority, in.Priority)
	set(&t.Status, in.Status)
	set(&t.ChannelID, in.ChannelID)
	set(&t.AssigneeType, in.AssigneeType)
	set(&t.AssigneeID, in.AssigneeID)
	set(&t.DepartmentAssigneeID, in.DepartmentAssigneeID)
	set(&t.ContactOrVisitorID, in.ContactOrVisitorID)
	set(&t.ContactOrVisitorType, in.ContactOrVisitorType)
	if in.CustomFields != nil {
		cf := map[string]any{}
		for k, v := range t.CustomFields {
			cf[k] = v
		}
		for k, v := range in.CustomFields {
			cf[k] = v
		}
		t.CustomFields = cf
	}
	if in.TagIDs != nil {
		t.TagIDs = append([]string{}, (*in.TagIDs)...)
	}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// ticketLocked finds a ticket; s.mu must be held.
func (s *Server) ticketLocked(id int64) *TicketRecord {
	return find(s.st.tickets, func(t *TicketRecord) bool { return t.ID == id })
}

func (s *Server) handleGetTicket(w http.ResponseWriter, r *http.Request) {
	id, _ := pathInt(r, "id")
	s.mu.Lock()
	t := s.ticketLocked(id)
	var cp TicketRecord
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
// as partial: fields left out keep their value (the page does not say).
func (s *Server) handleUpdateTicket(w http.ResponseWriter, r *http.Request) {
	id, _ := pathInt(r, "id")
	var in ticketIn
	if !decodeBody(w, r, &in) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.ticketLocked(id)
	if t == nil {
		writeError(w, http.StatusNotFound, 404000, "Ticket not found.")
		return
	}
	if err := in.check(&s.st); err != nil {
		writeError(w, http.StatusBadRequest, 400000, err.Error())
		return
	}
	if len(in.Messages) > 0 {
		writeError(w, http.StatusBadRequest, 400000, "Parameter 'messages' cannot be updated; reply with POST ticketing/messages.")
		return
	}
	u := *t
	apply(&u, &in)
	u.LastUpdatedTime = s.cfg.Now().UTC()
	*t = u
	writeJSON(w, http.StatusOK, u)
}

// handleCreateMessage is POST ticketing/messages, a Message
// (dash15.comm100.io/doc/Ticketing/ticketingMessage).
func (s *Server) handleCreateMessage(w http.ResponseWriter, r *http.Request) {
	var in messageIn
	if !decodeBody(w, r, &in) {
		return
	}
	if in.TicketID == 0 {
		writeError(w, http.StatusBadRequest, 400000, "Parameter 'ticketId' is required.")
		return
	}
	body, err := in.check("")
	if err != nil {
		writeError(w, http.StatusBadRequest, 400000, err.Error())
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
	m := &MessageRecord{ID: newGUID(), TicketID: t.ID, SentByType: or(in.SentByType, "agent"), ChannelID: or(in.ChannelID, t.ChannelID),
		Type: or(in.Type, "text"), Body: body, Time: now}
	s.st.messages = append(s.st.messages, m)
	t.LastUpdatedTime = now
	writeJSON(w, http.StatusCreated, m)
}

// handleCreateNote is POST ticketing/notes {ticketId, text}
// (dash15.comm100.io/doc/Ticketing/ticketingNote: Note JSON Format; text may
// be a base64 data URL).
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
	text, err := decodeText("text", in.Text)
	if err != nil {
		writeError(w, http.StatusBadRequest, 400000, err.Error())
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
	n := &NoteRecord{ID: newGUID(), TicketID: t.ID, Text: text, CreatedTime: now}
	s.st.notes = append(s.st.notes, n)
	writeJSON(w, http.StatusCreated, n)
}

// handleTicketFields is GET ticketing/fields: a bare array, narrowed by
// keywords ("Filter by field name").
func (s *Server) handleTicketFields(w http.ResponseWriter, r *http.Request) {
	kw := strings.ToLower(r.URL.Query().Get("keywords"))
	s.mu.Lock()
	out := []TicketFieldRecord{}
	for _, f := range s.st.fields {
		if kw == "" || strings.Contains(strings.ToLower(f.Name), kw) {
			out = append(out, *f)
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// isGUID reports whether s is a GUID, dashed or as 32 hex digits (the form
// of ticket-trigger payloads).
func isGUID(s string) bool {
	hex := func(r rune) bool { return (r >= '0' && r <= '9') || (r >= 'a' && r <= 'f') || (r >= 'A' && r <= 'F') }
	switch len(s) {
	case 36:
		for i, r := range s {
			if i == 8 || i == 13 || i == 18 || i == 23 {
				if r != '-' {
					return false
				}
			} else if !hex(r) {
				return false
			}
		}
		return true
	case 32:
		for _, r := range s {
			if !hex(r) {
				return false
			}
		}
		return true
	}
	return false
}

func sameGUID(a, b string) bool {
	return isGUID(a) && isGUID(b) && strings.EqualFold(strings.ReplaceAll(a, "-", ""), strings.ReplaceAll(b, "-", ""))
}

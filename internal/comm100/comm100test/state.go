package comm100test

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// State is everything the simulator holds, as GET /_sim/state shows it.
type State struct {
	Tickets         []TicketRecord         `json:"tickets"`
	Messages        []MessageRecord        `json:"messages"`
	Notes           []NoteRecord           `json:"notes"`
	Tags            []TagRecord            `json:"tags"`
	TicketFields    []TicketFieldRecord    `json:"ticketFields"`
	Contacts        []ContactRecord        `json:"contacts"`
	Webhooks        []WebhookRecord        `json:"webhooks"`
	Chats           []ChatRecord           `json:"chats"`
	OfflineMessages []OfflineMessageRecord `json:"offlineMessages"`
	Agents          []AgentRecord          `json:"agents"`
	Departments     []DepartmentRecord     `json:"departments"`
	Campaigns       []CampaignRecord       `json:"campaigns"`
	Visitors        []VisitorRecord        `json:"visitors"`
}

// Seed is data to add to the simulator (Server.Seed, POST /_sim/seed).
// Items without an id get one: an integer for chats and offline messages
// (with a GUID besides, the id their webhooks carry), a GUID otherwise.
type Seed struct {
	Tags            []TagRecord            `json:"tags,omitempty"`
	TicketFields    []TicketFieldRecord    `json:"ticketFields,omitempty"`
	Contacts        []ContactRecord        `json:"contacts,omitempty"`
	Chats           []ChatRecord           `json:"chats,omitempty"`
	OfflineMessages []OfflineMessageRecord `json:"offlineMessages,omitempty"`
	Agents          []AgentRecord          `json:"agents,omitempty"`
	Departments     []DepartmentRecord     `json:"departments,omitempty"`
	Campaigns       []CampaignRecord       `json:"campaigns,omitempty"`
	Visitors        []VisitorRecord        `json:"visitors,omitempty"`
}

// The ...Record types are the simulator's stored copies of Comm100's models,
// read independently of the client's own types in internal/comm100. They
// follow the pages listed in internal/comm100/SOURCES.md; each type names its
// page.

// TicketRecord is a ticket (developer.comm100.com/docs/server-api-ticketing-ticket);
// its id is an integer.
type TicketRecord struct {
	ID                   int64          `json:"id"`
	Subject              string         `json:"subject"`
	Priority             string         `json:"priority"`
	Status               string         `json:"status"`
	ChannelID            string         `json:"channelId"`
	AssigneeType         string         `json:"assigneeType,omitempty"`
	AssigneeID           string         `json:"assigneeId,omitempty"`
	DepartmentAssigneeID string         `json:"departmentAssigneeId,omitempty"`
	ContactOrVisitorID   string         `json:"contactOrVisitorId"`
	ContactOrVisitorType string         `json:"contactOrVisitorType,omitempty"`
	CustomFields         map[string]any `json:"customFields"`
	TagIDs               []string       `json:"tagIds"`
	CreatedTime          time.Time      `json:"createdTime"`
	LastUpdatedTime      time.Time      `json:"lastUpdatedTime"`
}

// MessageRecord is a message on a ticket
// (developer.comm100.com/docs/server-api-ticketing-message). Body is kept
// as text: a base64 data URL is decoded.
type MessageRecord struct {
	ID         string    `json:"id"`
	TicketID   int64     `json:"ticketId"`
	SentByType string    `json:"sentByType"`
	ChannelID  string    `json:"channelId,omitempty"`
	Type       string    `json:"type"`
	Body       string    `json:"body"`
	Time       time.Time `json:"time"`
}

// NoteRecord is an internal note on a ticket
// (dash15.comm100.io/doc/Ticketing/ticketingNote).
type NoteRecord struct {
	ID          string    `json:"id"`
	TicketID    int64     `json:"ticketId"`
	Text        string    `json:"text"`
	CreatedTime time.Time `json:"createdTime"`
}

// TagRecord is a ticket tag (developer.comm100.com/docs/server-api-ticketing-tag).
type TagRecord struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// TicketFieldRecord is a ticket field (dash15.comm100.io/doc/Ticketing/ticketingField).
// Tickets carry custom field values keyed by the field's id.
type TicketFieldRecord struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	SystemName string `json:"systemName"`
	Type       string `json:"type"`
	IsSystem   bool   `json:"isSystem"`
	IsRequired bool   `json:"isRequired"`
}

// ContactRecord is a contact with its identities
// (developer.comm100.com/docs/server-api-global-setting-contact).
type ContactRecord struct {
	ID           string                  `json:"id"`
	Name         string                  `json:"name"`
	Identities   []ContactIdentityRecord `json:"contactIdentities"`
	CustomFields map[string]any          `json:"customFields,omitempty"`
}

// ContactIdentityRecord is one way a contact is known.
type ContactIdentityRecord struct {
	Type  string `json:"contactIdentityType"`
	Value string `json:"value"`
}

// WebhookRecord is a webhook subscription
// (developer.comm100.com/docs/server-api-livechat-webhook); its id is a GUID.
type WebhookRecord struct {
	ID        string `json:"id"`
	Event     string `json:"event"`
	TargetURL string `json:"targetUrl"`
}

// ChatRecord is a live chat (dash15.comm100.io/doc/LiveChat/chat): an integer id
// for the REST API, and GUID, the id the live-chat webhooks carry, which
// GET livechat/chats/{id} takes too (Comm100's own API tests). Messages is a
// string, as the page types it.
type ChatRecord struct {
	ID              int64     `json:"id"`
	GUID            string    `json:"guid"`
	Status          string    `json:"status"`
	StartTime       time.Time `json:"startTime"`
	EndTime         time.Time `json:"endTime"`
	Messages        string    `json:"messages"`
	PreChatName     string    `json:"preChatName,omitempty"`
	PreChatEmail    string    `json:"preChatEmail,omitempty"`
	PreChatTicketID int64     `json:"preChatTicketId,omitempty"`
	DepartmentID    string    `json:"departmentId,omitempty"`
	CampaignID      string    `json:"campaignId,omitempty"`
}

// OfflineMessageRecord is a message left while no agent was online
// (dash15.comm100.io/doc/LiveChat/offlineMessage): an integer id and a GUID.
type OfflineMessageRecord struct {
	ID           int64     `json:"id"`
	GUID         string    `json:"guid"`
	CreatedTime  time.Time `json:"createdTime"`
	Name         string    `json:"name,omitempty"`
	Email        string    `json:"email,omitempty"`
	Phone        string    `json:"phone,omitempty"`
	Company      string    `json:"company,omitempty"`
	Subject      string    `json:"subject,omitempty"`
	Message      string    `json:"message"`
	DepartmentID string    `json:"departmentId,omitempty"`
	CampaignID   string    `json:"campaignId,omitempty"`
	VisitorID    string    `json:"visitorId,omitempty"`
	TicketID     int64     `json:"ticketId,omitempty"`
}

// AgentRecord is an agent (dash15.comm100.io/doc/Global/agent) with its live-chat
// status (dash15.comm100.io/doc/LiveChat/chatServer: "Online", "Away", ...).
type AgentRecord struct {
	ID            string   `json:"id"`
	Email         string   `json:"email"`
	DisplayName   string   `json:"displayName,omitempty"`
	FirstName     string   `json:"firstName,omitempty"`
	LastName      string   `json:"lastName,omitempty"`
	Status        string   `json:"status"`
	IsActive      bool     `json:"isActive"`
	TimeZone      string   `json:"timeZone,omitempty"`
	DepartmentIDs []string `json:"departmentIds,omitempty"`
}

// DepartmentRecord is a group of agents.
type DepartmentRecord struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	AgentIDs    []string `json:"agentIds,omitempty"`
}

// CampaignRecord is a live-chat campaign.
type CampaignRecord struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// VisitorRecord is a website visitor (dash15.comm100.io/doc/Global/visitor).
type VisitorRecord struct {
	ID             string `json:"id"`
	Name           string `json:"name,omitempty"`
	Email          string `json:"email,omitempty"`
	NumberOfVisits int    `json:"numberOfVisits"`
	NumberOfChats  int    `json:"numberOfChats"`
}

// state is the simulator's data, guarded by Server.mu. Slices keep creation
// order, which is the order lists answer in.
type state struct {
	tickets         []*TicketRecord
	messages        []*MessageRecord
	notes           []*NoteRecord
	tags            []*TagRecord
	fields          []*TicketFieldRecord
	contacts        []*ContactRecord
	webhooks        []*WebhookRecord
	chats           []*ChatRecord
	offlineMessages []*OfflineMessageRecord
	agents          []*AgentRecord
	departments     []*DepartmentRecord
	campaigns       []*CampaignRecord
	visitors        []*VisitorRecord

	nextTicket, nextChat, nextOffline int64
}

// ChatIDField is the id of the custom ticket field "Chat ID" every
// simulator starts with, so that the shipped rule that names it works
// against `bot sim`.
const ChatIDField = "7b3e6a0c-2d41-4f8e-9c55-1a2b3c4d5e6f"

// defaultFields are the ticket fields a new simulator has: a few of
// Comm100's system fields (dash11 KB "Introduction to Fields in Ticketing &
// Messaging") and the custom field "Chat ID".
func defaultFields() []*TicketFieldRecord {
	return []*TicketFieldRecord{
		{ID: "0a1b2c3d-0001-4000-8000-000000000001", Name: "Subject", SystemName: "subject", Type: "text", IsSystem: true, IsRequired: true},
		{ID: "0a1b2c3d-0002-4000-8000-000000000002", Name: "Priority", SystemName: "priority", Type: "dropdownList", IsSystem: true},
		{ID: "0a1b2c3d-0003-4000-8000-000000000003", Name: "Status", SystemName: "status", Type: "dropdownList", IsSystem: true},
		{ID: ChatIDField, Name: "Chat ID", Type: "text"},
	}
}

func newState() state {
	return state{nextTicket: 1000, nextChat: 3356700, nextOffline: 1140, fields: defaultFields()}
}

// Seed adds data and returns it as stored, with the ids given.
func (s *Server) Seed(in Seed) (Seed, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &s.st
	for i := range in.Chats {
		c := &in.Chats[i]
		if c.ID == 0 {
			st.nextChat++
			c.ID = st.nextChat
		}
		if c.GUID == "" {
			c.GUID = newGUID()
		}
		if find(st.chats, func(x *ChatRecord) bool { return x.ID == c.ID || strings.EqualFold(x.GUID, c.GUID) }) != nil {
			return Seed{}, fmt.Errorf("chat %d (%s): already exists", c.ID, c.GUID)
		}
		st.nextChat = max(st.nextChat, c.ID)
		if c.Status == "" {
			c.Status = "normal"
		}
	}
	for i := range in.OfflineMessages {
		m := &in.OfflineMessages[i]
		if m.ID == 0 {
			st.nextOffline++
			m.ID = st.nextOffline
		}
		if m.GUID == "" {
			m.GUID = newGUID()
		}
		if find(st.offlineMessages, func(x *OfflineMessageRecord) bool { return x.ID == m.ID || strings.EqualFold(x.GUID, m.GUID) }) != nil {
			return Seed{}, fmt.Errorf("offline message %d (%s): already exists", m.ID, m.GUID)
		}
		st.nextOffline = max(st.nextOffline, m.ID)
	}
	for i := range in.Contacts {
		if msg := st.checkIdentities(in.Contacts[i].Identities, ""); msg != "" {
			return Seed{}, fmt.Errorf("contact %d: %s", i, msg)
		}
	}
	for i, f := range in.TicketFields {
		if strings.TrimSpace(f.Name) == "" {
			return Seed{}, fmt.Errorf("ticket field %d: name is empty", i)
		}
	}
	assign := func(id *string) {
		if *id == "" {
			*id = newGUID()
		}
	}
	for i := range in.Chats {
		c := in.Chats[i]
		st.chats = append(st.chats, &c)
	}
	for i := range in.OfflineMessages {
		m := in.OfflineMessages[i]
		st.offlineMessages = append(st.offlineMessages, &m)
	}
	for i := range in.Tags {
		assign(&in.Tags[i].ID)
		t := in.Tags[i]
		st.tags = append(st.tags, &t)
	}
	for i := range in.TicketFields {
		assign(&in.TicketFields[i].ID)
		if in.TicketFields[i].Type == "" {
			in.TicketFields[i].Type = "text"
		}
		f := in.TicketFields[i]
		st.fields = append(st.fields, &f)
	}
	for i := range in.Contacts {
		assign(&in.Contacts[i].ID)
		c := in.Contacts[i]
		st.contacts = append(st.contacts, &c)
	}
	for i := range in.Agents {
		assign(&in.Agents[i].ID)
		if in.Agents[i].Status == "" {
			in.Agents[i].Status = "Offline"
		}
		a := in.Agents[i]
		st.agents = append(st.agents, &a)
	}
	for i := range in.Departments {
		assign(&in.Departments[i].ID)
		d := in.Departments[i]
		st.departments = append(st.departments, &d)
	}
	for i := range in.Campaigns {
		assign(&in.Campaigns[i].ID)
		c := in.Campaigns[i]
		st.campaigns = append(st.campaigns, &c)
	}
	for i := range in.Visitors {
		assign(&in.Visitors[i].ID)
		v := in.Visitors[i]
		st.visitors = append(st.visitors, &v)
	}
	return in, nil
}

// State returns a copy of everything the simulator holds.
func (s *Server) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return State{
		Tickets:         copyAll(s.st.tickets),
		Messages:        copyAll(s.st.messages),
		Notes:           copyAll(s.st.notes),
		Tags:            copyAll(s.st.tags),
		TicketFields:    copyAll(s.st.fields),
		Contacts:        copyAll(s.st.contacts),
		Webhooks:        copyAll(s.st.webhooks),
		Chats:           copyAll(s.st.chats),
		OfflineMessages: copyAll(s.st.offlineMessages),
		Agents:          copyAll(s.st.agents),
		Departments:     copyAll(s.st.departments),
		Campaigns:       copyAll(s.st.campaigns),
		Visitors:        copyAll(s.st.visitors),
	}
}

// copyAll copies the items (shallowly: maps and slices inside are shared,
// and never changed in place by the simulator).
func copyAll[T any](in []*T) []T {
	out := make([]T, 0, len(in))
	for _, p := range in {
		out = append(out, *p)
	}
	return out
}

func find[T any](items []*T, match func(*T) bool) *T {
	if i := slices.IndexFunc(items, match); i >= 0 {
		return items[i]
	}
	return nil
}

func newGUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// controlRoutes are the simulator's own endpoints, never recorded or limited.
func (s *Server) controlRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /_sim/requests", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Requests())
	})
	mux.HandleFunc("GET /_sim/state", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.State())
	})
	mux.HandleFunc("GET /_sim/faults", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Faults())
	})
	mux.HandleFunc("POST /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		var f Faults
		if err := decodeStrict(r, &f); err != nil {
			writeError(w, http.StatusBadRequest, 400000, "faults: "+err.Error())
			return
		}
		if err := s.SetFaults(f); err != nil {
			writeError(w, http.StatusBadRequest, 400000, "faults: "+err.Error())
			return
		}
		writeJSON(w, http.StatusOK, s.Faults())
	})
	mux.HandleFunc("POST /_sim/seed", func(w http.ResponseWriter, r *http.Request) {
		var in Seed
		if err := decodeStrict(r, &in); err != nil {
			writeError(w, http.StatusBadRequest, 400000, "seed: "+err.Error())
			return
		}
		out, err := s.Seed(in)
		if err != nil {
			writeError(w, http.StatusBadRequest, 400000, "seed: "+err.Error())
			return
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("/_sim/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, 404000,
			"Unknown control endpoint; there are GET /_sim/requests, GET /_sim/state, GET and POST /_sim/faults, POST /_sim/seed.")
	})
}

func decodeStrict(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 4<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("body: %w", err)
	}
	return nil
}

package comm100test

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"
)

// State is everything the simulator holds, as GET /_sim/state shows it.
type State struct {
	Tickets         []Ticket         `json:"tickets"`
	Messages        []Message        `json:"messages"`
	Notes           []Note           `json:"notes"`
	Tags            []Tag            `json:"tags"`
	Contacts        []Contact        `json:"contacts"`
	Webhooks        []Webhook        `json:"webhooks"`
	Chats           []Chat           `json:"chats"`
	OfflineMessages []OfflineMessage `json:"offlineMessages"`
	Agents          []Agent          `json:"agents"`
	Departments     []Department     `json:"departments"`
	Campaigns       []Campaign       `json:"campaigns"`
	Visitors        []Visitor        `json:"visitors"`
}

// Seed is data to add to the simulator (Server.Seed, POST /_sim/seed).
// Items without an id get one: an integer for chats, a GUID otherwise.
type Seed struct {
	Tags            []Tag            `json:"tags,omitempty"`
	Contacts        []Contact        `json:"contacts,omitempty"`
	Chats           []Chat           `json:"chats,omitempty"`
	OfflineMessages []OfflineMessage `json:"offlineMessages,omitempty"`
	Agents          []Agent          `json:"agents,omitempty"`
	Departments     []Department     `json:"departments,omitempty"`
	Campaigns       []Campaign       `json:"campaigns,omitempty"`
	Visitors        []Visitor        `json:"visitors,omitempty"`
}

// Ticket is a ticket; its id is an integer, as on v4.
type Ticket struct {
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

// Message is a reply on a ticket.
type Message struct {
	ID          string    `json:"id"`
	TicketID    int64     `json:"ticketId"`
	Type        string    `json:"type"`
	Body        string    `json:"body"`
	CreatedTime time.Time `json:"createdTime"`
}

// Note is an internal note on a ticket.
type Note struct {
	ID          string    `json:"id"`
	TicketID    int64     `json:"ticketId"`
	Text        string    `json:"text"`
	CreatedTime time.Time `json:"createdTime"`
}

// Tag is a ticket tag.
type Tag struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Contact is a contact with its identities.
type Contact struct {
	ID           string            `json:"id"`
	Name         string            `json:"name"`
	Identities   []ContactIdentity `json:"contactIdentities"`
	CustomFields map[string]any    `json:"customFields,omitempty"`
}

// ContactIdentity is one way a contact is known.
type ContactIdentity struct {
	Type  string `json:"contactIdentityType"`
	Value string `json:"value"`
}

// Webhook is a webhook subscription. Its id is an integer, so that clients
// meet number ids next to the GUID strings of other resources.
type Webhook struct {
	ID        int64  `json:"id"`
	Event     string `json:"event"`
	TargetURL string `json:"targetUrl"`
}

// Chat is a live chat; its id is an integer, as on v4.
type Chat struct {
	ID           int64          `json:"id"`
	VisitorID    string         `json:"visitorId,omitempty"`
	CampaignID   string         `json:"campaignId,omitempty"`
	DepartmentID string         `json:"departmentId,omitempty"`
	AgentIDs     []string       `json:"agentIds,omitempty"`
	TicketID     int64          `json:"ticketId,omitempty"`
	Rating       int            `json:"rating,omitempty"`
	StartTime    time.Time      `json:"startTime"`
	EndTime      time.Time      `json:"endTime"`
	CustomFields map[string]any `json:"customFields,omitempty"`
	Messages     []ChatMessage  `json:"messages"`
}

// ChatMessage is one line of a transcript.
type ChatMessage struct {
	SenderType string    `json:"senderType"`
	SenderID   string    `json:"senderId,omitempty"`
	Sender     string    `json:"sender,omitempty"`
	Content    string    `json:"content"`
	Time       time.Time `json:"time"`
}

// OfflineMessage is a message left while no agent was online.
type OfflineMessage struct {
	ID           string         `json:"id"`
	VisitorID    string         `json:"visitorId,omitempty"`
	CampaignID   string         `json:"campaignId,omitempty"`
	DepartmentID string         `json:"departmentId,omitempty"`
	TicketID     int64          `json:"ticketId,omitempty"`
	Name         string         `json:"name,omitempty"`
	Email        string         `json:"email,omitempty"`
	Phone        string         `json:"phone,omitempty"`
	Company      string         `json:"company,omitempty"`
	Subject      string         `json:"subject,omitempty"`
	Content      string         `json:"content"`
	Time         time.Time      `json:"time"`
	CustomFields map[string]any `json:"customFields,omitempty"`
}

// Agent is an agent with its live-chat presence.
type Agent struct {
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

// Department is a group of agents.
type Department struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	AgentIDs    []string `json:"agentIds,omitempty"`
}

// Campaign is a live-chat campaign.
type Campaign struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// Visitor is a website visitor.
type Visitor struct {
	ID             string    `json:"id"`
	Name           string    `json:"name,omitempty"`
	Email          string    `json:"email,omitempty"`
	Phone          string    `json:"phone,omitempty"`
	Company        string    `json:"company,omitempty"`
	Status         string    `json:"status,omitempty"`
	IP             string    `json:"ip,omitempty"`
	Country        string    `json:"country,omitempty"`
	TimeZone       string    `json:"timeZone,omitempty"`
	PageViews      int       `json:"pageViews,omitempty"`
	Visits         int       `json:"visits,omitempty"`
	FirstVisitTime time.Time `json:"firstVisitTime"`
	VisitTime      time.Time `json:"visitTime"`
}

// state is the simulator's data, guarded by Server.mu. Slices keep creation
// order, which is the order lists answer in.
type state struct {
	tickets         []*Ticket
	messages        []*Message
	notes           []*Note
	tags            []*Tag
	contacts        []*Contact
	webhooks        []*Webhook
	chats           []*Chat
	offlineMessages []*OfflineMessage
	agents          []*Agent
	departments     []*Department
	campaigns       []*Campaign
	visitors        []*Visitor

	nextTicket, nextWebhook, nextChat int64
}

func newState() state {
	return state{nextTicket: 1000, nextWebhook: 0, nextChat: 3356700}
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
		if find(st.chats, func(x *Chat) bool { return x.ID == c.ID }) != nil {
			return Seed{}, fmt.Errorf("chat %d: already exists", c.ID)
		}
		st.nextChat = max(st.nextChat, c.ID)
		if c.Messages == nil {
			c.Messages = []ChatMessage{}
		}
	}
	for i := range in.Contacts {
		if msg := st.checkIdentities(in.Contacts[i].Identities, ""); msg != "" {
			return Seed{}, fmt.Errorf("contact %d: %s", i, msg)
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
	for i := range in.Tags {
		assign(&in.Tags[i].ID)
		t := in.Tags[i]
		st.tags = append(st.tags, &t)
	}
	for i := range in.Contacts {
		assign(&in.Contacts[i].ID)
		c := in.Contacts[i]
		st.contacts = append(st.contacts, &c)
	}
	for i := range in.OfflineMessages {
		assign(&in.OfflineMessages[i].ID)
		m := in.OfflineMessages[i]
		st.offlineMessages = append(st.offlineMessages, &m)
	}
	for i := range in.Agents {
		assign(&in.Agents[i].ID)
		if in.Agents[i].Status == "" {
			in.Agents[i].Status = "offline"
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

package actions

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/comm100bot/bot/internal/comm100"
)

// Comm100 is the slice of the Comm100 client that actions use.
type Comm100 interface {
	CreateTicket(ctx context.Context, t comm100.NewTicket) (*comm100.Ticket, error)
	UpdateTicket(ctx context.Context, id string, u comm100.TicketUpdate) (*comm100.Ticket, error)
	ReplyTicket(ctx context.Context, m comm100.NewMessage) (*comm100.Message, error)
	AddTicketNote(ctx context.Context, n comm100.NewNote) (*comm100.Note, error)
	FindContacts(ctx context.Context, identityType, value string) ([]comm100.Contact, error)
	CreateContact(ctx context.Context, ct comm100.Contact) (*comm100.Contact, error)
	UpdateContact(ctx context.Context, id string, ct comm100.Contact) (*comm100.Contact, error)
	AttachChatToTicket(ctx context.Context, chatID, ticketID string) error
	AttachOfflineMessageToTicket(ctx context.Context, msgID, ticketID string) error
	SetAgentStatus(ctx context.Context, agentID, status string) error
	TicketFields(ctx context.Context) ([]comm100.TicketField, error)
	Do(ctx context.Context, method, path string, query url.Values, body, out any) error
}

var ticketFields = []Param{
	{Name: "priority", Type: enumType(false, "urgent", "high", "normal", "low"), Doc: "ticket priority"},
	{Name: "status", Type: enumType(false, "new", "pendingInternal", "pendingExternal", "onHold", "resolved"), Doc: "ticket status"},
	{Name: "assignee_id", Type: guidType, Doc: "agent id to assign to"},
	{Name: "department_id", Type: guidType, Doc: "department id to assign to"},
	{Name: "custom_fields", Type: objectType, Doc: "custom field values, keyed by field name or field id (GUID)"},
	{Name: "tag_ids", Type: listType(guidType), Doc: "tag ids"},
}

func comm100Actions() []*Action {
	return []*Action{
		{
			Name: "comm100.ticket.create", Comm100: true,
			Doc: "Creates a ticket. Result: ticket_id.",
			Params: append([]Param{
				{Name: "subject", Type: textType, Required: true, Doc: "ticket subject"},
				{Name: "message", Type: textType, Doc: "first message of the ticket"},
				{Name: "message_type", Type: enumType(false, "text", "html"), Doc: `"text" (default) or "html"`},
				{Name: "channel_id", Type: textType, Doc: "ticket channel"},
				{Name: "contact_id", Type: guidType, Doc: "contact or visitor id the ticket is about"},
				{Name: "contact_type", Type: enumType(false, "contact", "visitor"), Doc: `"contact" or "visitor"`},
			}, ticketFields...),
			Run: createTicket,
		},
		{
			Name: "comm100.ticket.update", Comm100: true,
			Doc: "Updates a ticket's fields. Result: ticket_id.",
			Params: append([]Param{
				{Name: "ticket_id", Type: integerIDType, Required: true, Doc: "the ticket"},
				{Name: "subject", Type: textType, Doc: "new subject"},
			}, ticketFields...),
			Run: updateTicket,
		},
		{
			Name: "comm100.ticket.reply", Comm100: true,
			Doc: "Replies on a ticket (the contact sees it). Result: message_id.",
			Params: []Param{
				{Name: "ticket_id", Type: integerIDType, Required: true, Doc: "the ticket"},
				{Name: "body", Type: textType, Required: true, Doc: "the reply"},
				{Name: "type", Type: enumType(false, "text", "html"), Doc: `"text" (default) or "html"`},
			},
			Run: replyTicket,
		},
		{
			Name: "comm100.ticket.note", Comm100: true,
			Doc: "Adds an internal note to a ticket. Result: note_id.",
			Params: []Param{
				{Name: "ticket_id", Type: integerIDType, Required: true, Doc: "the ticket"},
				{Name: "text", Type: textType, Required: true, Doc: "the note"},
			},
			Run: noteTicket,
		},
		{
			Name: "comm100.contact.upsert", Comm100: true,
			Doc: "Finds a contact by identity (email, else phone) and updates it, or creates it. Result: contact_id, created.",
			Params: []Param{
				{Name: "email", Type: textType, Doc: "email identity; email or phone is required"},
				{Name: "phone", Type: textType, Doc: "phone number, an SMS identity"},
				{Name: "name", Type: textType, Doc: "contact name"},
				{Name: "custom_fields", Type: objectType, Doc: "custom field values"},
			},
			Run: upsertContact,
		},
		{
			Name: "comm100.chat.attach_to_ticket", Comm100: true,
			Doc: "Attaches a chat transcript to a ticket.",
			Params: []Param{
				{Name: "chat_id", Type: chatIDType, Required: true, Doc: "the chat: its integer id, or the GUID a live-chat webhook carries"},
				{Name: "ticket_id", Type: integerIDType, Required: true, Doc: "the ticket"},
			},
			Run: func(ctx context.Context, rt *Runtime, p Params) (Result, error) {
				chat, ticket, err := p.requireTwo("chat_id", "ticket_id")
				if err != nil {
					return nil, err
				}
				return nil, rt.Comm100.AttachChatToTicket(ctx, chat, ticket)
			},
		},
		{
			Name: "comm100.offline_message.attach_to_ticket", Comm100: true,
			Doc: "Attaches an offline message to a ticket.",
			Params: []Param{
				{Name: "offline_message_id", Type: chatIDType, Required: true, Doc: "the offline message: its integer id, or the GUID of its webhook"},
				{Name: "ticket_id", Type: integerIDType, Required: true, Doc: "the ticket"},
			},
			Run: func(ctx context.Context, rt *Runtime, p Params) (Result, error) {
				msg, ticket, err := p.requireTwo("offline_message_id", "ticket_id")
				if err != nil {
					return nil, err
				}
				return nil, rt.Comm100.AttachOfflineMessageToTicket(ctx, msg, ticket)
			},
		},
		{
			Name: "comm100.agent.set_status", Comm100: true,
			Doc: "Sets an agent's live-chat status.",
			Params: []Param{
				{Name: "agent_id", Type: guidType, Required: true, Doc: "the agent"},
				{Name: "status", Type: enumType(false, "online", "away"), Required: true, Doc: "the agent's new status"},
			},
			Run: func(ctx context.Context, rt *Runtime, p Params) (Result, error) {
				agent, status, err := p.requireTwo("agent_id", "status")
				if err != nil {
					return nil, err
				}
				return nil, rt.Comm100.SetAgentStatus(ctx, agent, status)
			},
		},
		{
			Name: "comm100.request", Comm100: true,
			Doc: "Calls any Comm100 API path. Result: response (the decoded answer).",
			Params: []Param{
				{Name: "method", Type: enumType(true, "GET", "POST", "PUT", "PATCH", "DELETE"), Doc: "GET (default)"},
				{Name: "path", Type: textType, Required: true, Doc: "path relative to the API base, such as ticketing/tickets/42"},
				{Name: "query", Type: objectType, Doc: "query parameters"},
				{Name: "body", Type: anyType, Doc: "JSON body"},
			},
			Run: comm100Request,
		},
	}
}

func createTicket(ctx context.Context, rt *Runtime, p Params) (Result, error) {
	subject, err := p.Require("subject")
	if err != nil {
		return nil, err
	}
	custom, tags, err := p.customAndTags()
	if err != nil {
		return nil, err
	}
	if custom, err = rt.ticketFields().resolve(ctx, rt.Comm100, custom); err != nil {
		return nil, fmt.Errorf("create ticket: %w", err)
	}
	t := comm100.NewTicket{
		Subject:              subject,
		Priority:             p.String("priority"),
		Status:               p.String("status"),
		AssigneeID:           p.String("assignee_id"),
		DepartmentAssigneeID: p.String("department_id"),
		ChannelID:            p.String("channel_id"),
		ContactOrVisitorID:   p.String("contact_id"),
		ContactOrVisitorType: p.String("contact_type"),
		CustomFields:         custom,
		TagIDs:               tags,
	}
	if msg := p.String("message"); msg != "" {
		typ := p.String("message_type")
		if typ == "" {
			typ = "text"
		}
		t.Message = &comm100.TicketMessage{Type: typ, Body: msg}
	}
	out, err := rt.Comm100.CreateTicket(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("create ticket: %w", err)
	}
	return Result{"ticket_id": string(out.ID)}, nil
}

func updateTicket(ctx context.Context, rt *Runtime, p Params) (Result, error) {
	id, err := p.Require("ticket_id")
	if err != nil {
		return nil, err
	}
	custom, tags, err := p.customAndTags()
	if err != nil {
		return nil, err
	}
	if custom, err = rt.ticketFields().resolve(ctx, rt.Comm100, custom); err != nil {
		return nil, fmt.Errorf("update ticket %s: %w", id, err)
	}
	u := comm100.TicketUpdate{
		Subject:              p.String("subject"),
		Priority:             p.String("priority"),
		Status:               p.String("status"),
		AssigneeID:           p.String("assignee_id"),
		DepartmentAssigneeID: p.String("department_id"),
		CustomFields:         custom,
		TagIDs:               tags,
	}
	if _, err := rt.Comm100.UpdateTicket(ctx, id, u); err != nil {
		return nil, fmt.Errorf("update ticket %s: %w", id, err)
	}
	return Result{"ticket_id": id}, nil
}

func replyTicket(ctx context.Context, rt *Runtime, p Params) (Result, error) {
	id, body, err := p.requireTwo("ticket_id", "body")
	if err != nil {
		return nil, err
	}
	m, err := rt.Comm100.ReplyTicket(ctx, comm100.NewMessage{TicketID: comm100.ID(id), Type: p.String("type"), Body: body})
	if err != nil {
		return nil, fmt.Errorf("reply on ticket %s: %w", id, err)
	}
	return Result{"ticket_id": id, "message_id": string(m.ID)}, nil
}

func noteTicket(ctx context.Context, rt *Runtime, p Params) (Result, error) {
	id, text, err := p.requireTwo("ticket_id", "text")
	if err != nil {
		return nil, err
	}
	n, err := rt.Comm100.AddTicketNote(ctx, comm100.NewNote{TicketID: comm100.ID(id), Text: text})
	if err != nil {
		return nil, fmt.Errorf("note on ticket %s: %w", id, err)
	}
	return Result{"ticket_id": id, "note_id": string(n.ID)}, nil
}

func upsertContact(ctx context.Context, rt *Runtime, p Params) (Result, error) {
	var ids []comm100.ContactIdentity
	if e := strings.TrimSpace(p.String("email")); e != "" {
		ids = append(ids, comm100.ContactIdentity{Type: "Email", Value: e})
	}
	// A phone number is an SMS identity: the contact page lists no "Phone" type.
	if ph := strings.TrimSpace(p.String("phone")); ph != "" {
		ids = append(ids, comm100.ContactIdentity{Type: "SMS", Value: ph})
	}
	if len(ids) == 0 {
		return nil, Permanent(fmt.Errorf(`param "email" or "phone" is required`))
	}
	custom, err := p.Map("custom_fields")
	if err != nil {
		return nil, err
	}
	want := comm100.Contact{Name: p.String("name"), Identities: ids, CustomFields: custom}
	found, err := rt.Comm100.FindContacts(ctx, ids[0].Type, ids[0].Value)
	if err != nil {
		return nil, fmt.Errorf("find contact: %w", err)
	}
	if len(found) > 0 {
		c := found[0]
		upd := comm100.Contact{Name: want.Name, CustomFields: custom, Identities: mergeIdentities(c.Identities, ids)}
		if upd.Name == "" {
			upd.Name = c.Name
		}
		if _, err := rt.Comm100.UpdateContact(ctx, string(c.ID), upd); err != nil {
			return nil, fmt.Errorf("update contact %s: %w", c.ID, err)
		}
		return Result{"contact_id": string(c.ID), "created": false}, nil
	}
	c, err := rt.Comm100.CreateContact(ctx, want)
	if err != nil {
		return nil, fmt.Errorf("create contact: %w", err)
	}
	return Result{"contact_id": string(c.ID), "created": true}, nil
}

func mergeIdentities(have, add []comm100.ContactIdentity) []comm100.ContactIdentity {
	out := append([]comm100.ContactIdentity(nil), have...)
	for _, a := range add {
		dup := false
		for _, h := range have {
			if strings.EqualFold(h.Type, a.Type) && strings.EqualFold(h.Value, a.Value) {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, a)
		}
	}
	return out
}

func comm100Request(ctx context.Context, rt *Runtime, p Params) (Result, error) {
	path, err := p.Require("path")
	if err != nil {
		return nil, err
	}
	method := strings.ToUpper(p.String("method"))
	if method == "" {
		method = "GET"
	}
	switch method {
	case "GET", "POST", "PUT", "PATCH", "DELETE":
	default:
		return nil, Permanent(fmt.Errorf("param \"method\": unsupported method %q", method))
	}
	q, err := p.Map("query")
	if err != nil {
		return nil, err
	}
	query := url.Values{}
	for k, v := range q {
		query.Set(k, fmt.Sprint(v))
	}
	var out any
	if err := rt.Comm100.Do(ctx, method, path, query, p["body"], &out); err != nil {
		return nil, err
	}
	return Result{"response": out}, nil
}

// customAndTags reads the custom_fields and tag_ids params.
func (p Params) customAndTags() (map[string]any, []string, error) {
	custom, err := p.Map("custom_fields")
	if err != nil {
		return nil, nil, err
	}
	tags, err := p.Strings("tag_ids")
	if err != nil {
		return nil, nil, err
	}
	return custom, tags, nil
}

// requireTwo reads two required string params.
func (p Params) requireTwo(a, b string) (string, string, error) {
	va, err := p.Require(a)
	if err != nil {
		return "", "", err
	}
	vb, err := p.Require(b)
	if err != nil {
		return "", "", err
	}
	return va, vb, nil
}

// TicketFieldIDs turns the custom field names a rule writes into the field
// ids Comm100 keys ticket custom fields by. It keeps the list of GET
// ticketing/fields and fetches it again when a name is not in it (at most
// once per refreshFloor, so that a rule naming a field that does not exist
// does not spend the call budget on every job). A key that is a GUID is
// taken as a field id as it is. The zero value is ready to use; it is safe
// for concurrent use.
type TicketFieldIDs struct {
	mu      sync.Mutex
	fields  []comm100.TicketField
	fetched time.Time
	now     func() time.Time
	// fetching is closed when the fetch under way ends; nil when none is.
	// The fetch waits for the budget without holding mu, so that jobs
	// whose fields are known are not held up by it.
	fetching chan struct{}
}

// refreshFloor is the least time between two fetches of the field list.
const refreshFloor = 30 * time.Second

// ticketFields returns the runtime's cache, or a fresh one when none is set.
func (rt *Runtime) ticketFields() *TicketFieldIDs {
	if rt.TicketFields != nil {
		return rt.TicketFields
	}
	return &TicketFieldIDs{}
}

// resolve returns custom with every field name replaced by its id. A name
// no custom field has is a permanent error that names it.
func (f *TicketFieldIDs) resolve(ctx context.Context, c Comm100, custom map[string]any) (map[string]any, error) {
	if len(custom) == 0 {
		return custom, nil
	}
	out := make(map[string]any, len(custom))
	for _, key := range slices.Sorted(maps.Keys(custom)) {
		id := key
		if !comm100.IsGUID(key) {
			var err error
			if id, err = f.id(ctx, c, key); err != nil {
				return nil, err
			}
		}
		if _, dup := out[id]; dup {
			return nil, Permanent(fmt.Errorf("custom field %q: given twice, by name and by id", key))
		}
		out[id] = custom[key]
	}
	return out, nil
}

// id finds the id of the custom field called name: an exact match, else the
// one field whose name matches in any letter case.
func (f *TicketFieldIDs) id(ctx context.Context, c Comm100, name string) (string, error) {
	now := time.Now
	if f.now != nil {
		now = f.now
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for {
		if id, ok, err := f.lookup(name); ok || err != nil {
			return id, err
		}
		if f.fetching != nil {
			// Another job fetches the list: wait for it, then look again.
			done := f.fetching
			f.mu.Unlock()
			select {
			case <-done:
			case <-ctx.Done():
				f.mu.Lock()
				return "", ctx.Err()
			}
			f.mu.Lock()
			continue
		}
		// A miss: the field may be new, so fetch the list again, unless it
		// was fetched a moment ago.
		if f.fields != nil && now().Sub(f.fetched) < refreshFloor {
			break
		}
		done := make(chan struct{})
		f.fetching = done
		f.mu.Unlock()
		fields, err := c.TicketFields(ctx)
		f.mu.Lock()
		f.fetching = nil
		close(done)
		if err != nil {
			return "", fmt.Errorf("custom field %q: list the ticket fields: %w", name, err)
		}
		f.fields, f.fetched = fields, now()
		if id, ok, err := f.lookup(name); ok || err != nil {
			return id, err
		}
		break
	}
	var names []string
	for _, fl := range f.fields {
		if !fl.IsSystem {
			names = append(names, fmt.Sprintf("%q", fl.Name))
		}
	}
	known := "none"
	if len(names) > 0 {
		known = strings.Join(names, ", ")
	}
	return "", Permanent(fmt.Errorf("custom field %q: no ticket custom field has this name (custom fields: %s); "+
		"create it under Ticketing & Messaging > Settings > Fields & Mappings, or give its id", name, known))
}

// lookup searches the cached list; f.mu must be held.
func (f *TicketFieldIDs) lookup(name string) (string, bool, error) {
	var fold []comm100.TicketField
	for _, fl := range f.fields {
		if fl.Name == name {
			return checkCustom(fl, name)
		}
		if strings.EqualFold(fl.Name, name) {
			fold = append(fold, fl)
		}
	}
	switch len(fold) {
	case 0:
		return "", false, nil
	case 1:
		return checkCustom(fold[0], name)
	}
	return "", false, Permanent(fmt.Errorf("custom field %q: %d fields have this name in other letter cases; write it exactly", name, len(fold)))
}

func checkCustom(fl comm100.TicketField, name string) (string, bool, error) {
	if fl.IsSystem {
		return "", false, Permanent(fmt.Errorf("custom field %q: %q is a system field; set it with its own param", name, fl.Name))
	}
	return string(fl.ID), true, nil
}

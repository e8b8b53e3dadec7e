package comm100

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/comm100bot/bot/internal/comm100/comm100test"
	"github.com/comm100bot/bot/internal/secret"
)

// sentRequest is one call as the simulator recorded it, and as the golden
// files in testdata/requests hold it.
type sentRequest struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	Query  string `json:"query"`
	Body   any    `json:"body,omitempty"`
}

// Ids of the seeded data the golden bodies name.
const (
	goldenTag       = "5b2e8a3c-4d1f-4e6a-9b7c-0d1e2f3a4b5c"
	goldenAgent     = "c97a2afe-a38f-46f8-a55b-8ac9f873cd09"
	goldenChat      = 3356721
	goldenChatGUID  = "16c2cc3a-1b15-4b4f-9298-1cd04d6cec15"
	goldenOffline   = 1148
	goldenOffGUID   = "58f738e3-86e5-4ce2-92da-f65ecc0d5318"
	goldenContactID = "dc485cf6-9655-4e5e-bdd2-8c86515c9b94"
)

// TestRequestsMatchGolden pins what the client sends for every endpoint it
// calls: method, path, query and the exact JSON body, against the files in
// testdata/requests, which are written from the fields the pages listed in
// SOURCES.md document (not generated from the client). The simulator takes
// every one of them, so each is also a body it accepts.
func TestRequestsMatchGolden(t *testing.T) {
	e := newEnv(t, envOpt{})
	ctx, c := t.Context(), e.client
	if _, err := e.sim.Seed(comm100test.Seed{
		Tags:            []comm100test.TagRecord{{ID: goldenTag, Name: "vip"}},
		Chats:           []comm100test.ChatRecord{{ID: goldenChat, GUID: goldenChatGUID}},
		OfflineMessages: []comm100test.OfflineMessageRecord{{ID: goldenOffline, GUID: goldenOffGUID, Message: "Please call me back."}},
		Agents:          []comm100test.AgentRecord{{ID: goldenAgent, Email: "alex@example.com"}},
		Contacts: []comm100test.ContactRecord{{ID: goldenContactID, Name: "Jane Cooper",
			Identities: []comm100test.ContactIdentityRecord{{Type: "Email", Value: "jane.cooper@example.com"}}}},
	}); err != nil {
		t.Fatal(err)
	}
	site, email, key := e.sim.Credentials()
	b64, err := New(Config{BaseURL: e.url + comm100test.APIPrefix, SiteID: site, Email: email, APIKey: secret.String(key),
		Base64Bodies: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var hookID string
	calls := []struct {
		golden string
		call   func(ctx context.Context) error
	}{
		{"create_ticket", func(ctx context.Context) error {
			_, err := c.CreateTicket(ctx, NewTicket{
				Subject: "Low rating (1) from Jane Cooper", Priority: "high",
				CustomFields: map[string]any{comm100test.ChatIDField: goldenChatGUID},
				TagIDs:       []string{goldenTag},
				Message:      &TicketMessage{Body: "Jane Cooper rated the chat 1."},
			})
			return err
		}},
		{"create_ticket_defaults", func(ctx context.Context) error {
			_, err := c.CreateTicket(ctx, NewTicket{Subject: "Call back"})
			return err
		}},
		{"create_ticket_assigned_base64", func(ctx context.Context) error {
			_, err := b64.CreateTicket(ctx, NewTicket{Subject: "VIP chat", Status: "pendingInternal",
				AssigneeID: goldenAgent, ContactOrVisitorID: goldenContactID, ContactOrVisitorType: "contact",
				Message: &TicketMessage{Type: "html", Body: "<p>VIP</p>"}})
			return err
		}},
		{"get_ticket", func(ctx context.Context) error { _, err := c.Ticket(ctx, "1001"); return err }},
		{"update_ticket", func(ctx context.Context) error {
			_, err := c.UpdateTicket(ctx, "1001", TicketUpdate{Status: "onHold", AssigneeID: goldenAgent,
				CustomFields: map[string]any{comm100test.ChatIDField: "3356721"}, TagIDs: []string{}})
			return err
		}},
		{"reply_ticket", func(ctx context.Context) error {
			_, err := c.ReplyTicket(ctx, NewMessage{TicketID: "1001", Body: "We are on it."})
			return err
		}},
		{"reply_ticket_base64", func(ctx context.Context) error {
			_, err := b64.ReplyTicket(ctx, NewMessage{TicketID: "1001", Type: "html", Body: "<b>Done</b>", ChannelID: "Email"})
			return err
		}},
		{"note_ticket", func(ctx context.Context) error {
			_, err := c.AddTicketNote(ctx, NewNote{TicketID: "1001", Text: "Refund approved."})
			return err
		}},
		{"note_ticket_base64", func(ctx context.Context) error {
			_, err := b64.AddTicketNote(ctx, NewNote{TicketID: "1001", Text: "Refund approved."})
			return err
		}},
		{"ticket_fields", func(ctx context.Context) error { _, err := c.TicketFields(ctx); return err }},
		{"tags", func(ctx context.Context) error { _, err := c.Tags(ctx); return err }},
		{"create_tag", func(ctx context.Context) error { _, err := c.CreateTag(ctx, "refund"); return err }},
		{"find_contacts", func(ctx context.Context) error {
			_, err := c.FindContacts(ctx, "Email", "jane.cooper@example.com")
			return err
		}},
		{"create_contact", func(ctx context.Context) error {
			_, err := c.CreateContact(ctx, Contact{Name: "Omar Haddad", Identities: []ContactIdentity{
				{Type: "Email", Value: "omar.haddad@example.net"}, {Type: "SMS", Value: "+1 416 555 0134"}}})
			return err
		}},
		{"update_contact", func(ctx context.Context) error {
			_, err := c.UpdateContact(ctx, goldenContactID, Contact{Name: "Jane Cooper",
				Identities: []ContactIdentity{{Type: "Email", Value: "jane.cooper@example.com"}}})
			return err
		}},
		{"get_chat_by_guid", func(ctx context.Context) error { _, err := c.Chat(ctx, goldenChatGUID); return err }},
		{"search_chats", func(ctx context.Context) error {
			_, err := c.SearchChats(ctx, ChatQuery{
				Filters:   []Filter{{Name: "departmentId", Operator: "ignored", Value: []string{""}}},
				PageIndex: 2, PageSize: 50, SortBy: "startTime", SortOrder: "desc", Include: []string{"chatAgent"},
			})
			return err
		}},
		{"attach_chat_by_guid", func(ctx context.Context) error {
			return c.AttachChatToTicket(ctx, goldenChatGUID, "1001")
		}},
		{"get_offline_message", func(ctx context.Context) error { _, err := c.OfflineMessage(ctx, goldenOffGUID); return err }},
		{"attach_offline_message_by_guid", func(ctx context.Context) error {
			return c.AttachOfflineMessageToTicket(ctx, goldenOffGUID, "1001")
		}},
		{"set_agent_status", func(ctx context.Context) error { return c.SetAgentStatus(ctx, goldenAgent, "away") }},
		{"livechat_agents", func(ctx context.Context) error { _, err := c.LiveChatAgents(ctx); return err }},
		{"agents", func(ctx context.Context) error { _, err := c.Agents(ctx); return err }},
		{"departments", func(ctx context.Context) error { _, err := c.Departments(ctx); return err }},
		{"campaigns", func(ctx context.Context) error { _, err := c.Campaigns(ctx); return err }},
		{"visitors", func(ctx context.Context) error {
			for _, err := range c.Visitors(ctx, VisitorQuery{PageSize: 20}) {
				if err != nil {
					return err
				}
			}
			return nil
		}},
		{"create_webhook", func(ctx context.Context) error {
			h, err := c.CreateWebhook(ctx, "chatEnds", "https://bot.example.com/hooks/comm100/tok")
			if err == nil {
				hookID = string(h.ID)
			}
			return err
		}},
		{"webhooks", func(ctx context.Context) error { _, err := c.Webhooks(ctx); return err }},
		{"update_webhook", func(ctx context.Context) error {
			_, err := c.UpdateWebhook(ctx, hookID, "chatIsWrappedUp", "https://bot.example.com/hooks/comm100/tok")
			return err
		}},
		{"delete_webhook", func(ctx context.Context) error { return c.DeleteWebhook(ctx, hookID) }},
	}
	for _, tc := range calls {
		before := len(e.sim.Requests())
		if err := tc.call(ctx); err != nil {
			t.Fatalf("%s: %v", tc.golden, err)
		}
		var got []sentRequest
		for _, r := range e.sim.Requests()[before:] {
			sr := sentRequest{Method: r.Method, Path: r.Path, Query: r.Query}
			if len(r.Body) > 0 {
				if err := json.Unmarshal(r.Body, &sr.Body); err != nil {
					t.Fatal(err)
				}
			}
			if r.Status >= 300 {
				t.Errorf("%s: the simulator answered %d to %s %s", tc.golden, r.Status, r.Method, r.Path)
			}
			got = append(got, sr)
		}
		var want []sentRequest
		path := filepath.Join("testdata", "requests", tc.golden+".json")
		data, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%s: %v; the client sent:\n%s", tc.golden, err, mustJSON(got))
			continue
		}
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		// Webhook ids are GUIDs the simulator makes up.
		for i := range want {
			want[i].Path = strings.ReplaceAll(want[i].Path, "{webhook}", hookID)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: requests differ from %s (-golden +sent):\n%s", tc.golden, path, diff)
		}
	}
}

func mustJSON(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

// TestSimulatorRefusesWrongBodies sends bodies the pages say are wrong and
// expects the simulator's 400 {code, message}: the class of mistake that
// passing every test against a simulator written from the same guesses as
// the client would hide.
func TestSimulatorRefusesWrongBodies(t *testing.T) {
	e := newEnv(t, envOpt{})
	ctx, c := t.Context(), e.client
	if _, err := c.CreateTicket(ctx, NewTicket{Subject: "base"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path, body, want string
	}{
		{"singular message on ticket create", "POST", "ticketing/tickets",
			`{"subject":"x","message":{"type":"text","body":"hello"}}`, "Parameter 'message' is not a ticket field"},
		{"custom field by name", "POST", "ticketing/tickets",
			`{"subject":"x","customFields":{"chat_id":"3356721"}}`, "customFields are keyed by the id"},
		{"unknown custom field id", "POST", "ticketing/tickets",
			`{"subject":"x","customFields":{"8086c96675144efaa3140762462a62d8":""}}`, "does not exist"},
		{"priority out of the list", "POST", "ticketing/tickets", `{"subject":"x","priority":"critical"}`, "Parameter 'priority'"},
		{"status closed (v2)", "POST", "ticketing/tickets", `{"subject":"x","status":"closed"}`, "Parameter 'status'"},
		{"assignee not a GUID", "POST", "ticketing/tickets", `{"subject":"x","assigneeId":"42"}`, "Parameter 'assigneeId' must be a GUID"},
		{"message without body", "POST", "ticketing/tickets",
			`{"subject":"x","messages":[{"sentByType":"agent","type":"text"}]}`, "Parameter 'messages[0].body' is required"},
		{"message sent by a bot", "POST", "ticketing/tickets",
			`{"subject":"x","messages":[{"sentByType":"bot","type":"text","body":"x"}]}`, "sentByType"},
		{"bad base64 body", "POST", "ticketing/messages",
			`{"ticketId":1001,"sentByType":"agent","type":"text","body":"data:text/plain;base64,!!"}`, "not valid base64"},
		{"reply type markdown", "POST", "ticketing/messages", `{"ticketId":1001,"type":"markdown","body":"x"}`, "Parameter 'type'"},
		{"note without text", "POST", "ticketing/notes", `{"ticketId":1001}`, "Parameter 'text' is required"},
		{"search with paging in the body", "POST", "livechat/chats:search", `{"timeFrom":"2025-03-17T00:00:00Z","pageIndex":1}`, "not a body parameter"},
		{"search with an unknown filter", "POST", "livechat/chats:search", `{"filters":[{"name":"rating","operator":"is","value":["1"]}]}`, "not a chat filter"},
		{"phone identity", "POST", "contact/contacts", `{"name":"x","contactIdentities":[{"contactIdentityType":"Phone","value":"+1 555"}]}`, "contactIdentityType"},
		{"agent status offline", "PUT", "livechat/agents/" + goldenAgent, `{"status":"offline"}`, "Parameter 'status'"},
		{"webhook event name", "POST", "livechat/webhooks", `{"event":"chat_ended","targetUrl":"https://x.example"}`, "Parameter 'event'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body any
			if err := json.Unmarshal([]byte(tc.body), &body); err != nil {
				t.Fatal(err)
			}
			err := c.Do(ctx, tc.method, tc.path, nil, body, nil)
			ae, ok := err.(*APIError)
			if !ok || ae.Status != http.StatusBadRequest || ae.Code != 400000 || !strings.Contains(ae.Message, tc.want) {
				t.Errorf("got %v, want 400 (code 400000) saying %q", err, tc.want)
			}
		})
	}
}

package comm100

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/comm100bot/bot/internal/comm100/comm100test"
)

// TestEveryEndpoint walks through every typed call against the simulator and
// checks both the answers and the simulator's state.
func TestEveryEndpoint(t *testing.T) {
	e := newEnv(t, envOpt{})
	ctx, c := t.Context(), e.client
	t0 := time.Date(2025, 3, 17, 9, 0, 0, 0, time.UTC)
	seed, err := e.sim.Seed(comm100test.Seed{
		Chats: []comm100test.ChatRecord{{StartTime: t0, EndTime: t0.Add(5 * time.Minute), DepartmentID: "d1",
			Messages: `[{"senderName":"Jane","message":"hello"}]`}},
		OfflineMessages: []comm100test.OfflineMessageRecord{{Name: "Jane", Email: "jane@example.com", Message: "call me", CreatedTime: t0}},
		Agents:          []comm100test.AgentRecord{{ID: goldenAgent, Email: "alex@example.com", TimeZone: "China Standard Time"}},
		Departments:     []comm100test.DepartmentRecord{{Name: "Sales"}, {Name: "Support"}},
		Campaigns:       []comm100test.CampaignRecord{{Name: "Website"}},
		Visitors:        []comm100test.VisitorRecord{{Name: "Vincent", Email: "vincent@example.com", NumberOfVisits: 2, NumberOfChats: 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	chatID := ID(strconv.FormatInt(seed.Chats[0].ID, 10))
	chatGUID := seed.Chats[0].GUID
	msgGUID := seed.OfflineMessages[0].GUID

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	tag, err := c.CreateTag(ctx, "vip")
	must(err)
	fields, err := c.TicketFields(ctx)
	must(err)
	var chatField ID
	for _, f := range fields {
		if f.Name == "Chat ID" && !f.IsSystem {
			chatField = f.ID
		}
	}
	if chatField != comm100test.ChatIDField {
		t.Fatalf("ticket fields %+v: want the custom field Chat ID", fields)
	}
	ticket, err := c.CreateTicket(ctx, NewTicket{Subject: "Refund", Priority: "high", Message: &TicketMessage{Body: "please"},
		CustomFields: map[string]any{string(chatField): chatGUID}})
	must(err)
	if ticket.ID != "1001" || ticket.Status != "new" || ticket.ChannelID != "Internal" || ticket.CustomFields[string(chatField)] != chatGUID {
		t.Errorf("created ticket: got %+v", ticket)
	}
	updated, err := c.UpdateTicket(ctx, string(ticket.ID), TicketUpdate{Status: "pendingInternal", TagIDs: []string{string(tag.ID)}})
	must(err)
	if updated.Status != "pendingInternal" || updated.Priority != "high" || !slices.Equal(updated.TagIDs, []string{string(tag.ID)}) ||
		updated.LastUpdatedTime.IsZero() {
		t.Errorf("updated ticket: got %+v", updated)
	}
	cleared, err := c.UpdateTicket(ctx, string(ticket.ID), TicketUpdate{TagIDs: []string{}})
	must(err)
	if len(cleared.TagIDs) != 0 || cleared.Status != "pendingInternal" {
		t.Errorf("an empty TagIDs clears tags and keeps the rest: got %+v", cleared)
	}
	reply, err := c.ReplyTicket(ctx, NewMessage{TicketID: ticket.ID, Body: "on it"})
	must(err)
	note, err := c.AddTicketNote(ctx, NewNote{TicketID: ticket.ID, Text: "check the order"})
	must(err)
	if reply.TicketID != ticket.ID || reply.SentByType != "agent" || reply.Time.IsZero() || note.TicketID != ticket.ID || note.ID == "" {
		t.Errorf("reply %+v, note %+v: want both on ticket %s", reply, note, ticket.ID)
	}
	tags, err := c.Tags(ctx)
	must(err)
	if diff := cmp.Diff([]Tag{*tag}, tags); diff != "" {
		t.Errorf("tags (-want +got):\n%s", diff)
	}

	none, err := c.FindContacts(ctx, "Email", "jane@example.com")
	must(err)
	if len(none) != 0 {
		t.Errorf("contacts before creation: got %v", none)
	}
	contact, err := c.CreateContact(ctx, Contact{Name: "Jane", Identities: []ContactIdentity{{Type: "Email", Value: "jane@example.com"}}})
	must(err)
	found, err := c.FindContacts(ctx, "Email", "JANE@example.com")
	must(err)
	if len(found) != 1 || found[0].ID != contact.ID {
		t.Errorf("found contacts: got %+v, want the one created", found)
	}
	renamed, err := c.UpdateContact(ctx, string(contact.ID), Contact{Name: "Jane Cooper"})
	must(err)
	if renamed.Name != "Jane Cooper" || len(renamed.Identities) != 1 {
		t.Errorf("updated contact: got %+v", renamed)
	}

	for _, id := range []string{string(chatID), chatGUID} {
		chat, err := c.Chat(ctx, id)
		must(err)
		if chat.ID != chatID || chat.Status != "normal" || len(chat.Messages.Items) != 1 || chat.Messages.Items[0]["message"] != "hello" {
			t.Errorf("chat %s: got %+v", id, chat)
		}
	}
	page, err := c.SearchChats(ctx, ChatQuery{Filters: []Filter{{Name: "departmentId", Operator: "is", Value: []string{"d1"}}}})
	must(err)
	if len(page.Chats) != 1 || page.Chats[0].ID != chatID || page.Total != 1 {
		t.Errorf("search: got %+v", page)
	}
	other, err := c.SearchChats(ctx, ChatQuery{Filters: []Filter{{Name: "time", Operator: "is",
		Value: []string{t0.Add(time.Hour).Format(time.RFC3339), t0.Add(2 * time.Hour).Format(time.RFC3339)}}}})
	must(err)
	if len(other.Chats) != 0 || other.Total != 0 {
		t.Errorf("search after the chat: got %+v, want none", other)
	}
	must(c.AttachChatToTicket(ctx, chatGUID, string(ticket.ID)))
	attached, err := c.Chat(ctx, string(chatID))
	must(err)
	if attached.PreChatTicketID != ticket.ID {
		t.Errorf("chat after attaching: preChatTicketId %q, want %s", attached.PreChatTicketID, ticket.ID)
	}
	om, err := c.OfflineMessage(ctx, msgGUID)
	must(err)
	if om.Message != "call me" || om.GUID != ID(msgGUID) || !IsIntID(string(om.ID)) || !om.CreatedTime.Equal(t0) {
		t.Errorf("offline message: got %+v", om)
	}
	must(c.AttachOfflineMessageToTicket(ctx, msgGUID, string(ticket.ID)))

	must(c.SetAgentStatus(ctx, goldenAgent, "online"))
	live, err := c.LiveChatAgents(ctx)
	must(err)
	if len(live) != 1 || live[0].Status != "Online" {
		t.Errorf("live chat agents: got %+v", live)
	}
	agents, err := c.Agents(ctx)
	must(err)
	if len(agents) != 1 || agents[0].TimeZone != "China Standard Time" {
		t.Errorf("agents: got %+v", agents)
	}
	deps, err := c.Departments(ctx)
	must(err)
	if len(deps) != 2 || deps[1].Name != "Support" {
		t.Errorf("departments: got %+v", deps)
	}
	camps, err := c.Campaigns(ctx)
	must(err)
	if len(camps) != 1 {
		t.Errorf("campaigns: got %+v", camps)
	}
	var visitors []Visitor
	for v, err := range c.Visitors(ctx, VisitorQuery{}) {
		must(err)
		visitors = append(visitors, v)
	}
	if len(visitors) != 1 || visitors[0].NumberOfVisits != 2 || visitors[0].NumberOfChats != 1 {
		t.Errorf("visitors: got %+v", visitors)
	}

	hook, err := c.CreateWebhook(ctx, "chatEnds", "https://bot.example/hooks/comm100/tok")
	must(err)
	if !IsGUID(string(hook.ID)) {
		t.Errorf("webhook id: got %q, want a GUID", hook.ID)
	}
	hook2, err := c.UpdateWebhook(ctx, string(hook.ID), "offlineMessageIsSubmitted", hook.TargetURL)
	must(err)
	hooks, err := c.Webhooks(ctx)
	must(err)
	if diff := cmp.Diff([]Webhook{*hook2}, hooks); diff != "" {
		t.Errorf("webhooks (-want +got):\n%s", diff)
	}
	must(c.DeleteWebhook(ctx, string(hook.ID)))

	var raw map[string]any
	must(c.Do(ctx, http.MethodGet, "/ticketing/tickets/"+string(ticket.ID), nil, nil, &raw))
	if raw["subject"] != "Refund" {
		t.Errorf("generic call: got %v", raw)
	}

	st := e.sim.State()
	if len(st.Messages) != 2 || len(st.Notes) != 1 || len(st.Webhooks) != 0 || len(st.Contacts) != 1 {
		t.Errorf("state: %d messages, %d notes, %d webhooks, %d contacts; want 2, 1, 0, 1",
			len(st.Messages), len(st.Notes), len(st.Webhooks), len(st.Contacts))
	}
	if st.Messages[0].Body != "please" || st.Messages[0].SentByType != "agent" || st.Messages[0].ChannelID != "Internal" {
		t.Errorf("first message of the ticket: got %+v", st.Messages[0])
	}
	if st.Chats[0].PreChatTicketID != 1001 || st.OfflineMessages[0].TicketID != 1001 || st.Agents[0].Status != "Online" {
		t.Errorf("state: chat on ticket %d, offline message on ticket %d, agent %s; want 1001, 1001, Online",
			st.Chats[0].PreChatTicketID, st.OfflineMessages[0].TicketID, st.Agents[0].Status)
	}
}

func TestNotFound(t *testing.T) {
	e := newEnv(t, envOpt{})
	ctx, c := t.Context(), e.client
	tests := map[string]func() error{
		"ticket":          func() error { _, err := c.Ticket(ctx, "7"); return err },
		"reply":           func() error { _, err := c.ReplyTicket(ctx, NewMessage{TicketID: "7", Body: "x"}); return err },
		"note":            func() error { _, err := c.AddTicketNote(ctx, NewNote{TicketID: "7", Text: "x"}); return err },
		"contact":         func() error { _, err := c.UpdateContact(ctx, "nope", Contact{Name: "x"}); return err },
		"chat":            func() error { _, err := c.Chat(ctx, "7"); return err },
		"attach chat":     func() error { return c.AttachChatToTicket(ctx, "7", "7") },
		"offline message": func() error { _, err := c.OfflineMessage(ctx, "77"); return err },
		"attach offline":  func() error { return c.AttachOfflineMessageToTicket(ctx, "77", "7") },
		"agent":           func() error { return c.SetAgentStatus(ctx, "nope", "away") },
		"webhook":         func() error { return c.DeleteWebhook(ctx, goldenTag) },
		"id with a slash": func() error { _, err := c.Chat(ctx, "7/../../ticketing/tags"); return err },
	}
	for name, call := range tests {
		t.Run(name, func(t *testing.T) {
			if err := call(); !errors.Is(err, ErrNotFound) || !IsPermanent(err) {
				t.Errorf("got %v, want a permanent 404", err)
			}
		})
	}
	for name, call := range map[string]func() error{
		"empty ticket id": func() error { _, err := c.UpdateTicket(ctx, "", TicketUpdate{}); return err },
		"empty chat id":   func() error { return c.AttachChatToTicket(ctx, "", "1") },
		"empty reply id":  func() error { _, err := c.ReplyTicket(ctx, NewMessage{Body: "x"}); return err },
	} {
		t.Run(name, func(t *testing.T) {
			n := len(e.sim.Requests())
			if err := call(); err == nil || !strings.Contains(err.Error(), "empty") {
				t.Errorf("got %v, want an error about the empty id", err)
			}
			if len(e.sim.Requests()) != n {
				t.Error("a call was made")
			}
		})
	}
}

func TestLegacyContactsPath(t *testing.T) {
	e := newEnv(t, envOpt{sim: comm100test.Config{LegacyContacts: true}})
	for range 2 {
		if _, err := e.client.FindContacts(t.Context(), "Email", "a@example.com"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.client.CreateContact(t.Context(), Contact{Name: "A"}); err != nil {
		t.Fatal(err)
	}
	if a, b := e.count("/v4/contact/contacts", 404), e.count("/v4/global/contacts", 0); a != 1 || b != 3 {
		t.Errorf("got %d 404s on contact/contacts and %d calls to global/contacts, want 1 and 3", a, b)
	}
}

func TestPaginationOverHTTP(t *testing.T) {
	e := newEnv(t, envOpt{})
	vs := make([]comm100test.VisitorRecord, 25)
	agents := make([]comm100test.AgentRecord, 23)
	for i := range vs {
		vs[i].Name = "v" + strconv.FormatInt(int64(i), 10)
	}
	for i := range agents {
		agents[i].Email = "a" + strconv.FormatInt(int64(i), 10) + "@example.com"
	}
	if _, err := e.sim.Seed(comm100test.Seed{Visitors: vs, Agents: agents}); err != nil {
		t.Fatal(err)
	}
	pageQueries := func(path string) []string {
		var out []string
		for _, r := range e.sim.Requests() {
			if r.Path == path {
				out = append(out, r.Query)
			}
		}
		return out
	}

	t.Run("visitors over 3 pages", func(t *testing.T) {
		var names []string
		for v, err := range e.client.Visitors(t.Context(), VisitorQuery{PageSize: 10, SortOrder: "asc"}) {
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, v.Name)
		}
		if len(names) != 25 || names[0] != "v0" || names[24] != "v24" {
			t.Errorf("got %d visitors %v, want v0..v24", len(names), names)
		}
		want := []string{
			"pageSize=10&siteId=10000&sortOrder=asc",
			"pageIndex=2&pageSize=10&siteId=10000&sortOrder=asc",
			"pageIndex=3&pageSize=10&siteId=10000&sortOrder=asc",
		}
		if diff := cmp.Diff(want, pageQueries("/v4/global/visitors")); diff != "" {
			t.Errorf("page calls (-want +got):\n%s", diff)
		}
	})
	t.Run("stopping early fetches no more pages", func(t *testing.T) {
		before := len(pageQueries("/v4/global/visitors"))
		n := 0
		for _, err := range e.client.Visitors(t.Context(), VisitorQuery{PageSize: 10}) {
			if err != nil {
				t.Fatal(err)
			}
			if n++; n == 5 {
				break
			}
		}
		if got := len(pageQueries("/v4/global/visitors")) - before; got != 1 {
			t.Errorf("got %d page calls, want 1", got)
		}
	})
	t.Run("agents at the default page size", func(t *testing.T) {
		got, err := e.client.Agents(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 23 || len(pageQueries("/v4/global/agents")) != 3 {
			t.Errorf("got %d agents in %d pages, want 23 in 3", len(got), len(pageQueries("/v4/global/agents")))
		}
	})
	t.Run("an error ends the loop", func(t *testing.T) {
		if err := e.sim.SetFaults(comm100test.Faults{FailRate: 0.5}); err != nil {
			t.Fatal(err)
		}
		defer e.sim.SetFaults(comm100test.Faults{})
		var n int
		var last error
		for _, err := range e.client.Visitors(t.Context(), VisitorQuery{PageSize: 10}) {
			n++
			last = err
		}
		// Call 1 of the fault counter succeeds, call 2 (page 2) fails.
		if n != 11 || !IsTemporary(last) {
			t.Errorf("got %d values ending with %v, want 10 visitors then the 500", n, last)
		}
	})
}

func TestDecodePage(t *testing.T) {
	tests := []struct {
		name  string
		data  string
		items []Tag
		more  bool
		total int
		err   bool
	}{
		{name: "bare array", data: `[{"id":"a","name":"x"}]`, items: []Tag{{"a", "x"}}, total: -1},
		{name: "named key, last page", data: `{"tags":[{"id":1,"name":"x"}],"nextPage":null,"previousPage":null,"total":1}`, items: []Tag{{"1", "x"}}, total: 1},
		{name: "named key, more", data: `{"tags":[],"nextPage":"https://x/v4/ticketing/tags?pageIndex=2","total":"30"}`, items: []Tag{}, more: true, total: 30},
		{name: "search list", data: `{"list":[{"id":"b","name":"y"}]}`, items: []Tag{{"b", "y"}}, total: -1},
		{name: "empty", data: ``, total: -1},
		{name: "wrong key", data: `{"things":[]}`, err: true},
		{name: "not a list", data: `{"tags":{}}`, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := decodePage[Tag]([]byte(tt.data), "tags")
			if (err != nil) != tt.err {
				t.Fatalf("error: got %v, want error %v", err, tt.err)
			}
			if tt.err {
				return
			}
			if diff := cmp.Diff(tt.items, p.items); diff != "" || p.more != tt.more || p.total != tt.total {
				t.Errorf("got more %v total %d, want %v %d; items (-want +got):\n%s", p.more, p.total, tt.more, tt.total, diff)
			}
		})
	}
}

func TestID(t *testing.T) {
	tests := []struct {
		in   string
		want ID
		err  bool
	}{
		{in: `539`, want: "539"},
		{in: `"539"`, want: "539"},
		{in: `"6f1c2a1e-0000-4000-8000-000000000001"`, want: "6f1c2a1e-0000-4000-8000-000000000001"},
		{in: `12345678901234567890`, want: "12345678901234567890"},
		{in: `null`, want: ""},
		{in: `true`, err: true},
		{in: `{}`, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var got struct {
				ID ID `json:"id"`
			}
			err := json.Unmarshal([]byte(`{"id":`+tt.in+`}`), &got)
			if (err != nil) != tt.err || got.ID != tt.want {
				t.Errorf("got %q, %v; want %q, error %v", got.ID, err, tt.want, tt.err)
			}
		})
	}
	for id, want := range map[ID]string{"1001": `1001`, "-3": `-3`, "abc": `"abc"`, "007": `"007"`, "": `null`, "1e3": `"1e3"`} {
		if got := string(id.jsonValue()); got != want {
			t.Errorf("ID(%q).jsonValue() = %s, want %s", id, got, want)
		}
	}
}

// TestWebhookIDsResolve checks the ids live-chat webhooks carry: a GUID is
// turned into the integer id before :AttachToTicket, a GUID Comm100 has not
// stored yet is a temporary failure (it stores a chat some seconds after it
// ends), and an id that is neither is refused without a call.
func TestWebhookIDsResolve(t *testing.T) {
	e := newEnv(t, envOpt{})
	ctx, c := t.Context(), e.client
	if _, err := c.CreateTicket(ctx, NewTicket{Subject: "x"}); err != nil {
		t.Fatal(err)
	}
	const unknown = "db120346-2fa5-4957-a62b-e6765ab2691b"
	for name, call := range map[string]func() error{
		"chat":            func() error { return c.AttachChatToTicket(ctx, unknown, "1001") },
		"offline message": func() error { return c.AttachOfflineMessageToTicket(ctx, unknown, "1001") },
	} {
		t.Run(name+" not stored yet", func(t *testing.T) {
			err := call()
			if !errors.Is(err, ErrNotStoredYet) || !IsTemporary(err) || IsPermanent(err) {
				t.Errorf("got %v, want a temporary ErrNotStoredYet", err)
			}
			if !strings.Contains(fmt.Sprint(err), unknown) || !strings.Contains(fmt.Sprint(err), "not stored") {
				t.Errorf("error %q: want it to name the id and say why", err)
			}
		})
	}
	for name, call := range map[string]func() error{
		"chat":            func() error { return c.AttachChatToTicket(ctx, "chat-77", "1001") },
		"offline message": func() error { return c.AttachOfflineMessageToTicket(ctx, "0x1f", "1001") },
	} {
		t.Run(name+" neither integer nor GUID", func(t *testing.T) {
			n := len(e.sim.Requests())
			if err := call(); err == nil || !strings.Contains(err.Error(), "neither an integer nor a GUID") {
				t.Errorf("got %v, want an error saying the id is neither an integer nor a GUID", err)
			}
			if len(e.sim.Requests()) != n {
				t.Error("a call was made")
			}
		})
	}
}

package actions

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/comm100bot/bot/internal/comm100"
	"github.com/comm100bot/bot/internal/comm100/comm100test"
	"github.com/comm100bot/bot/internal/secret"
)

// simRuntime is a runtime whose Comm100 client talks to a simulator over
// real HTTP.
func simRuntime(t *testing.T) (*Runtime, *comm100test.Server) {
	t.Helper()
	sim := comm100test.New(comm100test.Config{})
	hs := httptest.NewServer(sim)
	t.Cleanup(hs.Close)
	site, email, key := sim.Credentials()
	c, err := comm100.New(comm100.Config{BaseURL: hs.URL + comm100test.APIPrefix, SiteID: site, Email: email,
		APIKey: secret.String(key)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &Runtime{Comm100: c, TicketFields: &TicketFieldIDs{}}, sim
}

func run(t *testing.T, rt *Runtime, action string, p Params) (Result, error) {
	t.Helper()
	a, ok := NewCatalog().Lookup(action)
	if !ok {
		t.Fatalf("no action %s", action)
	}
	return a.Run(t.Context(), rt, p)
}

func fieldCalls(sim *comm100test.Server) int {
	n := 0
	for _, r := range sim.Requests() {
		if r.Path == "/v4/ticketing/fields" {
			n++
		}
	}
	return n
}

// TestTicketCustomFieldsByName: a rule names custom fields by name or by id;
// names become ids through the ticket field list, fetched once and fetched
// again when a name is missing (at most every refreshFloor); an unknown name
// is a permanent error that names it.
func TestTicketCustomFieldsByName(t *testing.T) {
	rt, sim := simRuntime(t)
	clock := time.Date(2025, 3, 17, 9, 0, 0, 0, time.UTC)
	rt.TicketFields.now = func() time.Time { return clock }
	seed, err := sim.Seed(comm100test.Seed{TicketFields: []comm100test.TicketFieldRecord{{Name: "Order Number"}}})
	if err != nil {
		t.Fatal(err)
	}
	order := seed.TicketFields[0].ID
	const chatGUID = "16c2cc3a-1b15-4b4f-9298-1cd04d6cec15"

	res, err := run(t, rt, "comm100.ticket.create", Params{"subject": "Low rating", "message": "rated 1",
		"custom_fields": map[string]any{"Chat ID": chatGUID, "order number": "88121"}})
	if err != nil {
		t.Fatal(err)
	}
	st := sim.State()
	got := st.Tickets[0].CustomFields
	if len(got) != 2 || got[comm100test.ChatIDField] != chatGUID || got[order] != "88121" {
		t.Errorf("ticket %s custom fields: got %v, want them keyed by %s and %s", res["ticket_id"], got, comm100test.ChatIDField, order)
	}
	if st.Messages[0].Body != "rated 1" {
		t.Errorf("first message: got %+v", st.Messages[0])
	}

	// By id, and by name again: no new call for the list.
	if _, err := run(t, rt, "comm100.ticket.update", Params{"ticket_id": res["ticket_id"],
		"custom_fields": map[string]any{strings.ReplaceAll(order, "-", ""): "88122", "Chat ID": "x"}}); err != nil {
		t.Fatal(err)
	}
	if n := fieldCalls(sim); n != 1 {
		t.Errorf("got %d calls to ticketing/fields, want 1 (cached)", n)
	}

	// A field created after the list was fetched: a miss fetches it again.
	if _, err := sim.Seed(comm100test.Seed{TicketFields: []comm100test.TicketFieldRecord{{Name: "Region"}}}); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(time.Minute)
	if _, err := run(t, rt, "comm100.ticket.create", Params{"subject": "x", "custom_fields": map[string]any{"Region": "EU"}}); err != nil {
		t.Fatalf("a new field: %v", err)
	}
	if n := fieldCalls(sim); n != 2 {
		t.Errorf("got %d calls to ticketing/fields, want 2 (refreshed on the miss)", n)
	}

	// Unknown: permanent, names the field; a second miss right after makes no call.
	clock = clock.Add(time.Minute)
	for range 2 {
		_, err := run(t, rt, "comm100.ticket.create", Params{"subject": "x", "custom_fields": map[string]any{"chat_id": "1"}})
		var pe *permanentError
		if !errors.As(err, &pe) || Retryable(err) || !strings.Contains(err.Error(), `custom field "chat_id"`) ||
			!strings.Contains(err.Error(), `"Chat ID"`) {
			t.Errorf("got %v, want a permanent error naming chat_id and the known fields", err)
		}
	}
	if n := fieldCalls(sim); n != 3 {
		t.Errorf("got %d calls to ticketing/fields, want 3 (one refresh for the unknown name, then none within %s)", n, refreshFloor)
	}

	// A system field is not a custom field.
	if _, err := run(t, rt, "comm100.ticket.create", Params{"subject": "x", "custom_fields": map[string]any{"Priority": "high"}}); err == nil ||
		!strings.Contains(err.Error(), "system field") {
		t.Errorf("got %v, want an error saying Priority is a system field", err)
	}
	if n := len(sim.State().Tickets); n != 2 {
		t.Errorf("got %d tickets, want 2: no ticket for a job whose fields did not resolve", n)
	}
}

// TestAttachWithWebhookIDs: the attach actions take the GUIDs the live-chat
// webhooks carry; one Comm100 has not stored yet is retried, not dropped.
func TestAttachWithWebhookIDs(t *testing.T) {
	rt, sim := simRuntime(t)
	const chatGUID, msgGUID = "16c2cc3a-1b15-4b4f-9298-1cd04d6cec15", "58f738e3-86e5-4ce2-92da-f65ecc0d5318"
	if _, err := sim.Seed(comm100test.Seed{
		Chats:           []comm100test.ChatRecord{{GUID: chatGUID}},
		OfflineMessages: []comm100test.OfflineMessageRecord{{GUID: msgGUID, Message: "call me"}},
	}); err != nil {
		t.Fatal(err)
	}
	res, err := run(t, rt, "comm100.ticket.create", Params{"subject": "x"})
	if err != nil {
		t.Fatal(err)
	}
	ticket := res["ticket_id"]
	if _, err := run(t, rt, "comm100.chat.attach_to_ticket", Params{"chat_id": chatGUID, "ticket_id": ticket}); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, rt, "comm100.offline_message.attach_to_ticket", Params{"offline_message_id": msgGUID, "ticket_id": ticket}); err != nil {
		t.Fatal(err)
	}
	st := sim.State()
	if st.Chats[0].PreChatTicketID != 1001 || st.OfflineMessages[0].TicketID != 1001 {
		t.Errorf("chat attached to %d, offline message to %d; want 1001 both", st.Chats[0].PreChatTicketID, st.OfflineMessages[0].TicketID)
	}
	_, err = run(t, rt, "comm100.chat.attach_to_ticket", Params{"chat_id": "db120346-2fa5-4957-a62b-e6765ab2691b", "ticket_id": ticket})
	if !Retryable(err) || !strings.Contains(err.Error(), "not stored") {
		t.Errorf("a chat not stored yet: got %v, want a retryable error that says why", err)
	}
	_, err = run(t, rt, "comm100.chat.attach_to_ticket", Params{"chat_id": "chat-7", "ticket_id": ticket})
	if Retryable(err) || err == nil || !strings.Contains(err.Error(), "neither an integer nor a GUID") {
		t.Errorf("a malformed chat id: got %v, want a permanent error that says why", err)
	}
}

// TestContactPhoneIsAnSMSIdentity: the contact page has no "Phone" identity type.
func TestContactPhoneIsAnSMSIdentity(t *testing.T) {
	rt, sim := simRuntime(t)
	if _, err := run(t, rt, "comm100.contact.upsert", Params{"phone": "+1 604 555 0182", "name": "Jane"}); err != nil {
		t.Fatal(err)
	}
	ids := sim.State().Contacts[0].Identities
	if len(ids) != 1 || ids[0].Type != "SMS" || ids[0].Value != "+1 604 555 0182" {
		t.Errorf("identities: got %+v, want one SMS identity", ids)
	}
}

// slowFields is a Comm100 whose field list comes when released.
type slowFields struct {
	Comm100
	release chan struct{}
	fetches atomic.Int32
}

func (s *slowFields) TicketFields(ctx context.Context) ([]comm100.TicketField, error) {
	s.fetches.Add(1)
	select {
	case <-s.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return []comm100.TicketField{
		{ID: "11111111-1111-1111-1111-111111111111", Name: "Region"},
		{ID: "22222222-2222-2222-2222-222222222222", Name: "Order"},
	}, nil
}

// TestTicketFieldIDsFetchDoesNotHoldUpKnownFields: while one job fetches
// the field list (waiting for the Comm100 budget), a job whose field is
// known gets its id at once, and a third that needs the list waits for
// that fetch instead of making its own.
func TestTicketFieldIDsFetchDoesNotHoldUpKnownFields(t *testing.T) {
	c := &slowFields{release: make(chan struct{})}
	f := &TicketFieldIDs{fields: []comm100.TicketField{{ID: "11111111-1111-1111-1111-111111111111", Name: "Region"}},
		fetched: time.Now().Add(-time.Hour)}
	got := make(chan string, 2)
	for range 2 {
		go func() {
			id, err := f.id(t.Context(), c, "Order") // not known: fetches
			if err != nil {
				id = err.Error()
			}
			got <- id
		}()
	}
	waitFor(t, "the fetch", 5*time.Second, func() bool { return c.fetches.Load() == 1 })
	known := make(chan string, 1)
	go func() {
		id, _ := f.id(t.Context(), c, "Region")
		known <- id
	}()
	select {
	case id := <-known:
		if id != "11111111-1111-1111-1111-111111111111" {
			t.Errorf("Region: got %q", id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a known field waited for the fetch")
	}
	close(c.release)
	for range 2 {
		if id := <-got; id != "22222222-2222-2222-2222-222222222222" {
			t.Errorf("Order: got %q", id)
		}
	}
	if n := c.fetches.Load(); n != 1 {
		t.Errorf("%d fetches, want 1 shared", n)
	}
}

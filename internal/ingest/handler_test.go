package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/comm100bot/bot/internal/event"
	"github.com/comm100bot/bot/internal/testenv"
)

// memPublisher is the bus for handler tests: it remembers event ids as
// JetStreamPublisher does, or fails like a bus that is away.
type memPublisher struct {
	mu     sync.Mutex
	events []*event.Event
	seen   map[string]bool
	err    error
}

func (p *memPublisher) Publish(_ context.Context, ev *event.Event) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return false, p.err
	}
	if p.seen == nil {
		p.seen = map[string]bool{}
	}
	if p.seen[ev.ID] {
		return true, nil
	}
	p.seen[ev.ID] = true
	p.events = append(p.events, ev)
	return false, nil
}

func (p *memPublisher) published() []*event.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*event.Event(nil), p.events...)
}

// testNow is the handler's clock in tests.
var testNow = time.Date(2024, 11, 22, 9, 0, 0, 0, time.UTC)

// testSources are one source of every kind and verification.
var testSources = map[string]SourceConfig{
	"comm100":  {Kind: KindComm100},
	"tokened":  {Kind: KindComm100, Token: "t0k3n-7f9c2e", SecretHeader: "X-Bot-Secret", Secret: "trigger-secret"},
	"office":   {Kind: KindComm100, AllowIPs: []string{"203.0.113.0/24"}},
	"loopback": {Kind: KindComm100, AllowIPs: []string{"127.0.0.1", "::1"}},
	"forms": {Kind: KindGeneric, Secret: "form-secret",
		Signature: SignatureConfig{Header: "X-Signature", Algorithm: "sha512", Encoding: "base64", Prefix: "v1=", TimestampHeader: "X-Timestamp"},
		Type:      "body.topic", ID: `headers["X-Delivery-Id"]`, Subject: "body.order.id"},
	"plain":   {Kind: KindGeneric},
	"crm":     {Kind: KindGeneric, Bearer: "crm-token", Type: `"contact." + body.action`},
	"erp":     {Kind: KindGeneric, Basic: BasicConfig{Username: "erp", Password: "erp-pass"}},
	"github":  {Kind: KindGeneric, Preset: "github", Secret: "gh-secret"},
	"stripe":  {Kind: KindGeneric, Preset: "stripe", Secret: "whsec_abc"},
	"shopify": {Kind: KindGeneric, Preset: "shopify", Secret: "shp-secret"},
	"ce":      {Kind: KindCloudEvents},
}

type testServer struct {
	url string
	pub *memPublisher
	h   *Handler
	log *bytes.Buffer
}

func newTestServer(t *testing.T, maxBody int64) *testServer {
	t.Helper()
	ts := &testServer{pub: &memPublisher{}, log: &bytes.Buffer{}}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(ts.log, t.Output()), nil))
	h, err := New(Config{MaxBodyBytes: maxBody, Sources: testSources, RetryAfter: 7 * time.Second}, ts.pub, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	h.now = func() time.Time { return testNow }
	ts.h = h
	srv := serveHandler(t, h)
	ts.url = srv.URL
	return ts
}

// signed builds the request the sender of a test source would make.
func (ts *testServer) signed(t *testing.T, source, body string, headers ...string) *http.Request {
	t.Helper()
	req, err := NewRequest(t.Context(), ts.url, source, testSources[source], []byte(body), testNow)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return req
}

func do(t *testing.T, req *http.Request) (*http.Response, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("answer %d is not a JSON object: %q", resp.StatusCode, data)
	}
	return resp, out
}

func fixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/comm100/" + name + ".json")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHandlerAcceptsEverySourceKind(t *testing.T) {
	ts := newTestServer(t, 1<<20)
	order := `{"topic":"order.paid","order":{"id":88121,"total":129.9}}`
	tests := []struct {
		name string
		req  func() *http.Request
		want event.Event
	}{
		{
			name: "comm100 live chat",
			req:  func() *http.Request { return ts.signed(t, "comm100", fixture(t, "chat_started")) },
			want: event.Event{ID: "chat.started:c9f0f895-fb98-4b9a-8a3e-2f1d0c4b5a67", Source: "comm100", Type: "chat.started", Subject: "c9f0f895-fb98-4b9a-8a3e-2f1d0c4b5a67", Time: testNow},
		},
		{
			name: "comm100 live chat with token",
			req:  func() *http.Request { return ts.signed(t, "tokened", fixture(t, "chat_request")) },
			want: event.Event{ID: "chat.requested:c9f0f895-fb98-4b9a-8a3e-2f1d0c4b5a67", Source: "tokened", Type: "chat.requested", Subject: "c9f0f895-fb98-4b9a-8a3e-2f1d0c4b5a67", Time: testNow},
		},
		{
			name: "comm100 ticket trigger with token and secret header",
			req:  func() *http.Request { return ts.signed(t, "tokened", fixture(t, "ticket_trigger")) },
			want: event.Event{Source: "tokened", Type: "ticket.reply_received", Subject: "1042", Time: testNow},
		},
		{
			name: "comm100 classic envelope",
			req:  func() *http.Request { return ts.signed(t, "comm100", fixture(t, "classic_agent_replied")) },
			want: event.Event{ID: "7d1b9e44-0f3a-4c5e-b6d7-e8f9a0b1c2d3", Source: "comm100", Type: "ticket.agent_replied", Time: time.UnixMilli(1662704210993).UTC()},
		},
		{
			name: "comm100 from an allowed address",
			req:  func() *http.Request { return ts.signed(t, "loopback", fixture(t, "agent_online")) },
			want: event.Event{ID: "agent.status_changed:a87ff679-a2f3-471d-8c1f-2b3c4d5e6f70:online:1732266000", Source: "loopback", Type: "agent.status_changed", Subject: "a87ff679-a2f3-471d-8c1f-2b3c4d5e6f70", Time: testNow},
		},
		{
			name: "generic with HMAC, timestamp and expressions",
			req:  func() *http.Request { return ts.signed(t, "forms", order, "x-delivery-id", "dlv-1") },
			want: event.Event{ID: "dlv-1", Source: "forms", Type: "order.paid", Subject: "88121", Time: testNow},
		},
		{
			name: "generic without id: its type and a hash of the body",
			req:  func() *http.Request { return ts.signed(t, "plain", `[1,2,3]`) },
			want: event.Event{ID: "webhook:" + bodyHash([]byte(`[1,2,3]`)), Source: "plain", Type: "webhook", Time: testNow},
		},
		{
			name: "generic with bearer",
			req:  func() *http.Request { return ts.signed(t, "crm", `{"action":"created","id":5}`) },
			want: event.Event{Source: "crm", Type: "contact.created", Time: testNow},
		},
		{
			name: "generic with basic",
			req:  func() *http.Request { return ts.signed(t, "erp", `{"x":1}`) },
			want: event.Event{Source: "erp", Type: "webhook", Time: testNow},
		},
		{
			name: "github preset",
			req: func() *http.Request {
				return ts.signed(t, "github", `{"action":"opened","issue":{"number":7}}`, "X-GitHub-Event", "issues", "X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
			},
			want: event.Event{ID: "issues:" + bodyHash([]byte(`{"action":"opened","issue":{"number":7}}`)), Source: "github", Type: "issues", Time: testNow},
		},
		{
			name: "stripe preset",
			req: func() *http.Request {
				return ts.signed(t, "stripe", `{"id":"evt_1","type":"invoice.paid","data":{"object":{"id":"in_9"}}}`)
			},
			want: event.Event{ID: "evt_1", Source: "stripe", Type: "invoice.paid", Subject: "in_9", Time: testNow},
		},
		{
			name: "shopify preset",
			req: func() *http.Request {
				return ts.signed(t, "shopify", `{"id":820982911946154508}`, "X-Shopify-Topic", "orders/create", "X-Shopify-Webhook-Id", "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043")
			},
			want: event.Event{ID: "orders.create:" + bodyHash([]byte(`{"id":820982911946154508}`)), Source: "shopify", Type: "orders.create", Subject: "820982911946154508", Time: testNow},
		},
		{
			name: "cloudevents structured",
			req: func() *http.Request {
				return ts.signed(t, "ce", `{"specversion":"1.0","id":"A234-1234-1234","source":"/shop","type":"com.example.order.paid","subject":"88121","time":"2024-11-22T08:59:00Z","datacontenttype":"application/json","data":{"total":12}}`)
			},
			want: event.Event{ID: "A234-1234-1234", Source: "ce", Type: "com.example.order.paid", Subject: "88121", Time: testNow.Add(-time.Minute)},
		},
		{
			name: "cloudevents binary",
			req: func() *http.Request {
				req := ts.signed(t, "ce", `{"total":12}`, "Content-Type", "application/json",
					"ce-specversion", "1.0", "ce-id", "B1", "ce-source", "/shop", "ce-type", "com.example.order.refunded")
				return req
			},
			want: event.Event{ID: "B1", Source: "ce", Type: "com.example.order.refunded", Time: testNow},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(ts.pub.published())
			resp, out := do(t, tt.req())
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("got %d %v, want 202", resp.StatusCode, out)
			}
			evs := ts.pub.published()
			if len(evs) != before+1 {
				t.Fatalf("published %d events, want 1", len(evs)-before)
			}
			got := *evs[len(evs)-1]
			if out["id"] != got.ID {
				t.Errorf("answer id %v, published id %q", out["id"], got.ID)
			}
			ignore := []cmp.Option{cmpopts.IgnoreFields(event.Event{}, "Data")}
			if tt.want.ID == "" {
				ignore = append(ignore, cmpopts.IgnoreFields(event.Event{}, "ID"))
			}
			if diff := cmp.Diff(tt.want, got, ignore...); diff != "" {
				t.Errorf("event (-want +got):\n%s", diff)
			}
			if got.ID == "" || got.Data == nil {
				t.Errorf("event has no id or no data: %+v", got)
			}
		})
	}
	// The CloudEvent's data, the generic body with numbers: what rules see.
	for _, ev := range ts.pub.published() {
		switch ev.ID {
		case "A234-1234-1234":
			if diff := cmp.Diff(map[string]any{"total": int64(12)}, ev.Data); diff != "" {
				t.Errorf("CloudEvent data (-want +got):\n%s", diff)
			}
		case "dlv-1":
			want := map[string]any{"topic": "order.paid", "order": map[string]any{"id": int64(88121), "total": 129.9}}
			if diff := cmp.Diff(want, ev.Data); diff != "" {
				t.Errorf("generic data (-want +got):\n%s", diff)
			}
		}
	}
}

func TestHandlerRefusals(t *testing.T) {
	ts := newTestServer(t, 1024)
	chat := fixture(t, "chat_started")
	post := func(path, body string, headers ...string) func() *http.Request {
		return func() *http.Request {
			req, err := http.NewRequest(http.MethodPost, ts.url+path, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			for i := 0; i+1 < len(headers); i += 2 {
				req.Header.Set(headers[i], headers[i+1])
			}
			return req
		}
	}
	tests := []struct {
		name   string
		req    func() *http.Request
		status int
		source string // metric label
		reason string
		errMsg string
	}{
		{"unknown source", post("/hooks/nope", chat), 404, "unknown", "unknown_source", `unknown source`},
		{"wrong method", func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, ts.url+"/hooks/comm100", nil)
			return r
		}, 405, "comm100", "method", "use POST"},
		{"missing token", post("/hooks/tokened", chat), 401, "tokened", "verification", "missing or wrong token in the URL"},
		{"wrong token", post("/hooks/tokened/t0k3n-7f9c2f", chat), 401, "tokened", "verification", "missing or wrong token in the URL"},
		{"token where none is set", post("/hooks/comm100/abc", chat), 401, "comm100", "verification", "this source takes no token in its URL"},
		{"address not allowed", post("/hooks/office", chat), 401, "office", "verification", "is not allowed to post to this source"},
		{"ticket trigger without the secret header", post("/hooks/tokened/t0k3n-7f9c2e", `{"TriggerName":"x","TicketInfo":{"Id":1}}`), 401, "tokened", "verification", "missing X-Bot-Secret header"},
		{"ticket trigger with a wrong secret header", post("/hooks/tokened/t0k3n-7f9c2e", `{"TriggerName":"x","TicketInfo":{"Id":1}}`, "X-Bot-Secret", "guess"), 401, "tokened", "verification", "wrong X-Bot-Secret header"},
		{"form content type", post("/hooks/comm100", chat, "Content-Type", "application/x-www-form-urlencoded"), 415, "comm100", "content_type", "is not JSON"},
		{"xml content type", post("/hooks/plain", `<a/>`, "Content-Type", "application/xml"), 415, "plain", "content_type", "is not JSON"},
		{"cloudevents batch", post("/hooks/ce", `[]`, "Content-Type", "application/cloudevents-batch+json"), 415, "ce", "content_type", "batch mode"},
		{"cloudevents binary with non-JSON data", post("/hooks/ce", `hi`, "Content-Type", "text/html", "ce-specversion", "1.0"), 415, "ce", "content_type", "is not JSON"},
		{"too large by length", post("/hooks/comm100", `{"event":"chat_started","x":"`+strings.Repeat("a", 2000)+`"}`), 413, "comm100", "too_large", "body is larger than 1024 bytes"},
		{"not json", post("/hooks/comm100", `nope`), 400, "comm100", "malformed", "body is not JSON"},
		{"unknown comm100 event", post("/hooks/comm100", `{"event":"made_up"}`), 400, "comm100", "malformed", `unknown Comm100 event "made_up"`},
		{"no chat id", post("/hooks/comm100", `{"event":"chat_ended","chat":{}}`), 400, "comm100", "malformed", "has no chat id"},
		{"bad signature", post("/hooks/forms", `{"topic":"a"}`, "X-Signature", "v1=AAAA", "X-Timestamp", "1732266000"), 401, "forms", "verification", "signature does not match the body"},
		{"stale timestamp", func() *http.Request {
			req := ts.signed(t, "forms", `{"topic":"a"}`)
			req.Header.Set("X-Timestamp", "1732265000")
			return req
		}, 401, "forms", "verification", "more than the tolerance"},
		{"github unsigned", post("/hooks/github", `{}`, "X-GitHub-Event", "push"), 401, "github", "verification", "missing X-Hub-Signature-256 header"},
		{"github without event header", func() *http.Request { return ts.signed(t, "github", `{}`) }, 400, "github", "malformed", "missing X-GitHub-Event header"},
		{"shopify without topic header", func() *http.Request { return ts.signed(t, "shopify", `{}`) }, 400, "shopify", "malformed", "missing X-Shopify-Topic header"},
		{"stripe signed with another secret", func() *http.Request {
			req, _ := NewRequest(t.Context(), ts.url, "stripe", SourceConfig{Kind: KindGeneric, Preset: "stripe", Secret: "whsec_other"}, []byte(`{"id":"e","type":"x"}`), testNow)
			return req
		}, 401, "stripe", "verification", "Stripe-Signature signature does not match the body"},
		{"bearer wrong", post("/hooks/crm", `{"action":"x"}`, "Authorization", "Bearer crm-tokeN"), 401, "crm", "verification", "wrong bearer credential"},
		{"type expression fails", func() *http.Request { return ts.signed(t, "crm", `[1]`) }, 400, "crm", "malformed", "the type expression failed on this request"},
		{"type not a valid name", func() *http.Request { return ts.signed(t, "crm", `{"action":"a b"}`) }, 400, "crm", "malformed", `event type "contact.a b"`},
		{"cloudevent without id", post("/hooks/ce", `{"specversion":"1.0","source":"/x","type":"t"}`, "Content-Type", "application/cloudevents+json"), 400, "ce", "malformed", "CloudEvent has no id attribute"},
		{"cloudevent of another version", post("/hooks/ce", `{"specversion":"0.3","id":"1","source":"/x","type":"t"}`), 400, "ce", "malformed", `CloudEvent specversion is "0.3", want "1.0"`},
		{"cloudevent with a bad time", post("/hooks/ce", `{"specversion":"1.0","id":"1","source":"/x","type":"t","time":"yesterday"}`), 400, "ce", "malformed", "is not RFC 3339"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := counted(t, ts.h, tt.source, tt.reason)
			resp, out := do(t, tt.req())
			if resp.StatusCode != tt.status {
				t.Errorf("got %d %v, want %d", resp.StatusCode, out, tt.status)
			}
			if msg, _ := out["error"].(string); !strings.Contains(msg, tt.errMsg) {
				t.Errorf("error %q, want it to contain %q", msg, tt.errMsg)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content type %q, want application/json", ct)
			}
			if tt.status == 405 && resp.Header.Get("Allow") != "POST" {
				t.Errorf("Allow header %q, want POST", resp.Header.Get("Allow"))
			}
			if got := counted(t, ts.h, tt.source, tt.reason); got != before+1 {
				t.Errorf("bot_ingest_requests_total{source=%q,outcome=%q} went from %v to %v, want +1", tt.source, tt.reason, before, got)
			}
		})
	}
	if evs := ts.pub.published(); len(evs) != 0 {
		t.Errorf("refused requests published %d events: %+v", len(evs), evs)
	}
	// Refusals are logged without secrets or bodies.
	logged := ts.log.String()
	for _, leak := range []string{"t0k3n-7f9c2e", "t0k3n-7f9c2f", "trigger-secret", "guess", "crm-token", "form-secret", "whsec_", "Omar Haddad"} {
		if strings.Contains(logged, leak) {
			t.Errorf("the log shows %q:\n%s", leak, logged)
		}
	}
}

// TestHandlerCutsLargeBodies sends an endless body without a length: the
// handler must answer 413 after reading about the limit, not the whole body.
func TestHandlerCutsLargeBodies(t *testing.T) {
	ts := newTestServer(t, 64<<10)
	body := &countingReader{r: io.MultiReader(strings.NewReader(`{"event":"chat_started","x":"`), endless{})}
	req, err := http.NewRequest(http.MethodPost, ts.url+"/hooks/comm100", body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = -1 // chunked: the server cannot know the size up front
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("got %d, want 413", resp.StatusCode)
	}
	// The client may have buffered some more into the connection; what
	// matters is that it stopped far short of forever.
	if n := body.count(); n > 16<<20 {
		t.Errorf("the client could send %d bytes, want the server to stop it near 64 KiB", n)
	}
	if evs := ts.pub.published(); len(evs) != 0 {
		t.Errorf("published %d events", len(evs))
	}
}

type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	return len(p), nil
}

type countingReader struct {
	mu sync.Mutex
	r  io.Reader
	n  int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.mu.Lock()
	c.n += int64(n)
	c.mu.Unlock()
	return n, err
}

func (c *countingReader) count() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func TestHandlerDuplicatesAndBusDown(t *testing.T) {
	ts := newTestServer(t, 1<<20)
	body := fixture(t, "chat_ended")
	resp, out := do(t, ts.signed(t, "comm100", body))
	if resp.StatusCode != http.StatusAccepted || out["id"] != "chat.ended:8f14e45f-ceea-4e7a-9b21-3d5c6a7b8c90" {
		t.Fatalf("first: got %d %v, want 202 chat.ended:8f14e45f-ceea-4e7a-9b21-3d5c6a7b8c90", resp.StatusCode, out)
	}
	resp, out = do(t, ts.signed(t, "comm100", body))
	if diff := cmp.Diff(map[string]any{"id": "chat.ended:8f14e45f-ceea-4e7a-9b21-3d5c6a7b8c90", "duplicate": true}, out); resp.StatusCode != http.StatusOK || diff != "" {
		t.Errorf("repeat: got %d, want 200; body (-want +got):\n%s", resp.StatusCode, diff)
	}
	if got := counted(t, ts.h, "comm100", "duplicate"); got != 1 {
		t.Errorf("duplicates counted %v, want 1", got)
	}

	ts.pub.mu.Lock()
	ts.pub.err = errors.New("nats: connection closed")
	ts.pub.mu.Unlock()
	resp, out = do(t, ts.signed(t, "comm100", fixture(t, "chat_started")))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "7" {
		t.Errorf("bus down: got %d Retry-After=%q, want 503 with Retry-After 7", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if out["error"] == "" {
		t.Errorf("bus down: no error message: %v", out)
	}
	if got := counted(t, ts.h, "comm100", "bus_unavailable"); got != 1 {
		t.Errorf("bus_unavailable counted %v, want 1", got)
	}
}

// TestHandlerAnswersBotEngine: a third-party bot engine waits for
// {"id", "answer": [...]}; the bot stores the event and answers with no
// responses of its own, the same id for a repeat. The chatbot intent webhook
// and every other webhook keep the usual answer.
func TestHandlerAnswersBotEngine(t *testing.T) {
	ts := newTestServer(t, 1<<20)
	body := fixture(t, "bot_engine_question_asked")
	resp, first := do(t, ts.signed(t, "comm100", body))
	id, _ := first["id"].(string)
	if resp.StatusCode != http.StatusOK || len(id) != 36 || id[14] != '5' {
		t.Fatalf("bot engine: got %d %v, want 200 with a GUID id", resp.StatusCode, first)
	}
	want := map[string]any{"id": id, "answer": []any{}, "event_id": "chatbot.question_asked:9bf31c7f-f062-4d36-ae3a-2c1b0d9e8f76:6a214444d31ae8a4ab1108cd"}
	if diff := cmp.Diff(want, first); diff != "" {
		t.Errorf("bot engine answer (-want +got):\n%s", diff)
	}
	resp, again := do(t, ts.signed(t, "comm100", body))
	want["duplicate"] = true
	if diff := cmp.Diff(want, again); resp.StatusCode != http.StatusOK || diff != "" {
		t.Errorf("bot engine repeat: got %d, want 200 with the same id; (-want +got):\n%s", resp.StatusCode, diff)
	}
	resp, out := do(t, ts.signed(t, "comm100", fixture(t, "chatbot_question_asked")))
	if _, ok := out["answer"]; resp.StatusCode != http.StatusAccepted || ok {
		t.Errorf("intent webhook: got %d %v, want the usual 202 {id}", resp.StatusCode, out)
	}
}

// counted reads bot_ingest_requests_total for a source and outcome.
func counted(t *testing.T, h *Handler, source, outcome string) float64 {
	t.Helper()
	var m dto.Metric
	if err := h.requests.WithLabelValues(source, outcome).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// stalledPublisher is a bus whose PubAck does not come: Publish waits until
// its context ends.
type stalledPublisher struct {
	once   sync.Once
	called chan struct{}
}

func (p *stalledPublisher) Publish(ctx context.Context, _ *event.Event) (bool, error) {
	p.once.Do(func() { close(p.called) })
	<-ctx.Done()
	return false, fmt.Errorf("publish: %w", ctx.Err())
}

// A sender that hangs up while its event is being stored is counted and
// logged as gone, not as a bus outage.
func TestHandlerClientGone(t *testing.T) {
	pub := &stalledPublisher{called: make(chan struct{})}
	var logs testenv.LogBuffer
	h, err := New(Config{Sources: testSources}, pub, slog.New(slog.NewTextHandler(&logs, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	srv := serveHandler(t, h)

	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/hooks/comm100", strings.NewReader(fixture(t, "chat_ended")))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		<-pub.called
		cancel()
	}()
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("request answered %d; want the client to have hung up", resp.StatusCode)
	}
	deadline := time.Now().Add(10 * time.Second)
	for counted(t, h, "comm100", "client_gone") != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("client_gone counted %v, want 1; log:\n%s", counted(t, h, "comm100", "client_gone"), logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := counted(t, h, "comm100", "bus_unavailable"); got != 0 {
		t.Errorf("bus_unavailable counted %v, want 0", got)
	}
	log := logs.String()
	if !strings.Contains(log, "the client hung up") || !strings.Contains(log, "event_id=chat.ended:8f14e45f-ceea-4e7a-9b21-3d5c6a7b8c90") || strings.Contains(log, "bus unavailable") {
		t.Errorf("log does not say the client hung up (and only that):\n%s", log)
	}
}

// TestHandlerDoesNotEchoUnknownSources: a made-up source name, however long,
// is neither in the answer nor, beyond a short printable prefix, in the log.
func TestHandlerDoesNotEchoUnknownSources(t *testing.T) {
	ts := newTestServer(t, 1024)
	name := "evil" + strings.Repeat("x", 200<<10) + "%0Afake=line"
	before := ts.log.Len()
	req, err := http.NewRequest(http.MethodPost, ts.url+"/hooks/"+name, strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusNotFound || string(answer) != `{"error":"unknown source"}`+"\n" {
		t.Errorf("got %d %q, want 404 {\"error\":\"unknown source\"}", resp.StatusCode, answer)
	}
	logged := ts.log.String()[before:]
	if len(logged) > 300 || strings.Contains(logged, "fake=line") || strings.Contains(logged, strings.Repeat("x", maxNamePrefix)) {
		t.Errorf("the log holds %d bytes of the name:\n%.500s", len(logged), logged)
	}
	if !strings.Contains(logged, "name_prefix=evil"+strings.Repeat("x", maxNamePrefix-4)+"...") {
		t.Errorf("the log lacks the name's prefix:\n%s", logged)
	}
}

func TestNamePrefix(t *testing.T) {
	for in, want := range map[string]string{
		"shop":                  "shop",
		"a\nb c":                "a?b?c",
		strings.Repeat("y", 40): strings.Repeat("y", maxNamePrefix) + "...",
	} {
		if got := namePrefix(in); got != want {
			t.Errorf("namePrefix(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestPresetReplaysAreDuplicates replays signed requests as an attacker who
// captured them would: the headers that the signature does not cover
// (GitHub's and Shopify's delivery ids) changed. The event id comes from
// what is signed, so the replay is the same event: a duplicate.
func TestPresetReplaysAreDuplicates(t *testing.T) {
	ts := newTestServer(t, 1<<20)
	tests := []struct {
		source, body string
		first, again []string
	}{
		{"github", `{"action":"opened","issue":{"number":8}}`,
			[]string{"X-GitHub-Event", "issues", "X-GitHub-Delivery", "d-1"},
			[]string{"X-GitHub-Event", "issues", "X-GitHub-Delivery", "d-2"}},
		{"shopify", `{"id":820982911946154509}`,
			[]string{"X-Shopify-Topic", "orders/create", "X-Shopify-Webhook-Id", "w-1"},
			[]string{"X-Shopify-Topic", "orders/create", "X-Shopify-Webhook-Id", "w-2"}},
		{"stripe", `{"id":"evt_2","type":"invoice.paid"}`, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.source, func(t *testing.T) {
			first := ts.signed(t, tt.source, tt.body, tt.first...)
			replay := first.Clone(t.Context())
			replay.Body = io.NopCloser(strings.NewReader(tt.body))
			for i := 0; i+1 < len(tt.again); i += 2 {
				replay.Header.Set(tt.again[i], tt.again[i+1])
			}
			resp, out := do(t, first)
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("first: got %d %v, want 202", resp.StatusCode, out)
			}
			resp, again := do(t, replay)
			if resp.StatusCode != http.StatusOK || again["duplicate"] != true || again["id"] != out["id"] {
				t.Errorf("replay: got %d %v, want 200 duplicate of %v", resp.StatusCode, again, out["id"])
			}
		})
	}
}

func TestSourceReplayWindow(t *testing.T) {
	tests := []struct {
		name string
		cfg  SourceConfig
		want time.Duration
	}{
		{"comm100", SourceConfig{Kind: KindComm100}, 0},
		{"github signs no time", SourceConfig{Kind: KindGeneric, Preset: "github"}, 0},
		{"shopify signs no time", SourceConfig{Kind: KindGeneric, Preset: "shopify"}, 0},
		{"stripe", SourceConfig{Kind: KindGeneric, Preset: "stripe"}, 10 * time.Minute},
		{"hmac without a timestamp", SourceConfig{Kind: KindGeneric, Signature: SignatureConfig{Header: "X-Sig"}}, 0},
		{"hmac with a timestamp", SourceConfig{Kind: KindGeneric, Signature: SignatureConfig{Header: "X-Sig", TimestampHeader: "X-Ts"}}, 10 * time.Minute},
		{"hmac with a tolerance", SourceConfig{Kind: KindGeneric, Signature: SignatureConfig{Header: "X-Sig", TimestampHeader: "X-Ts", Tolerance: 3 * time.Minute}}, 6 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.cfg.ReplayWindow(); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// TestReadBody: a body reads whole whatever its announced length, and a
// large announced length costs no more than bodyPrealloc before the body
// comes.
func TestReadBody(t *testing.T) {
	big := strings.Repeat("b", 3*bodyPrealloc)
	for _, c := range []struct {
		body      string
		announced int64
	}{{"", 0}, {"{}", -1}, {"{}", 2}, {"{}", 5}, {big, int64(len(big))}, {big, -1}} {
		got, err := readBody(strings.NewReader(c.body), c.announced)
		if err != nil || string(got) != c.body {
			t.Errorf("announced %d, %d bytes: got %d bytes, %v", c.announced, len(c.body), len(got), err)
		}
	}
	got, err := readBody(strings.NewReader("{}"), 1<<20)
	if err != nil || string(got) != "{}" || cap(got) > bodyPrealloc+bytes.MinRead {
		t.Errorf("1 MiB announced, 2 bytes sent: got %q (cap %d), %v", got, cap(got), err)
	}
}

// gatedSink holds every publish until released.
type gatedSink struct {
	entered chan struct{}
	release chan struct{}
}

func (g *gatedSink) Publish(ctx context.Context, ev *event.Event) (bool, error) {
	g.entered <- struct{}{}
	<-g.release
	return false, nil
}

// TestHandlerBoundsTheBytesInFlight: while webhooks whose bodies add up to
// http.max_in_flight_bytes are being handled, one more is answered 503
// with Retry-After, without its body being read; once they are done, it is
// taken.
func TestHandlerBoundsTheBytesInFlight(t *testing.T) {
	g := &gatedSink{entered: make(chan struct{}, 4), release: make(chan struct{})}
	reg := prometheus.NewRegistry()
	h, err := New(Config{MaxBodyBytes: 8 << 10, MaxInFlightBytes: 16 << 10, Sources: map[string]SourceConfig{"plain": {Kind: KindGeneric}}},
		g, slog.New(slog.NewTextHandler(t.Output(), nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	srv := serveHandler(t, h)
	post := func(size int) *http.Response {
		body := `{"pad":"` + strings.Repeat("x", size-10) + `"}`
		resp, err := http.Post(srv.URL+"/hooks/plain", "application/json", strings.NewReader(body))
		if err != nil {
			t.Error(err)
			return nil
		}
		resp.Body.Close()
		return resp
	}
	done := make(chan int, 2)
	for range 2 {
		go func() {
			if resp := post(7 << 10); resp != nil {
				done <- resp.StatusCode
			}
		}()
	}
	<-g.entered
	<-g.entered // 14 KiB in flight
	resp := post(4 << 10)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
		t.Errorf("one more: got %d Retry-After %q, want 503 and 1", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	close(g.release)
	for range 2 {
		if st := <-done; st != http.StatusAccepted {
			t.Errorf("a webhook in flight: got %d", st)
		}
	}
	go func() { <-g.entered }()
	if resp := post(4 << 10); resp.StatusCode != http.StatusAccepted {
		t.Errorf("once the others are done: got %d", resp.StatusCode)
	}
	if n := h.inFlight.Load(); n != 0 {
		t.Errorf("%d bytes still reserved", n)
	}
	if _, err := New(Config{MaxBodyBytes: 2 << 20, MaxInFlightBytes: 1 << 20}, g, slog.New(slog.DiscardHandler), nil); err == nil {
		t.Error("a budget below the largest body was taken")
	}
}

// serveHandler serves h's webhook routes on a test server of its own.
func serveHandler(t *testing.T, h *Handler) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

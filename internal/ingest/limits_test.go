package ingest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/comm100bot/bot/internal/event"
)

// storingPublisher stores events as the JetStream publisher does: encoded,
// refused when the encoding fails or is larger than the bus's max payload.
type storingPublisher struct {
	mu         sync.Mutex
	maxPayload int
	stored     [][]byte
}

func (p *storingPublisher) Publish(_ context.Context, ev *event.Event) (bool, error) {
	data, err := event.Encode(ev)
	if err != nil {
		return false, fmt.Errorf("encode event %s: %w", ev.ID, err)
	}
	if len(data) > p.maxPayload {
		return false, fmt.Errorf("publish event %s: %w", ev.ID, nats.ErrMaxPayload)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stored = append(p.stored, data)
	return false, nil
}

func (p *storingPublisher) take() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.stored
	p.stored = nil
	return out
}

// nested is a JSON value nested n levels deep: [[[...1...]]].
func nested(n int) string {
	return strings.Repeat("[", n) + "1" + strings.Repeat("]", n)
}

// TestHandlerAcceptsOnlyWhatTheConsumerDecodes: every body answered 202 is
// stored as an event the rules consumer's decoder takes; everything else is
// refused with a 4xx and a JSON error, never stored, never a 5xx.
func TestHandlerAcceptsOnlyWhatTheConsumerDecodes(t *testing.T) {
	pub := &storingPublisher{maxPayload: 64 << 10}
	sources := map[string]SourceConfig{
		"comm100": {Kind: KindComm100},
		"shop":    {Kind: KindGeneric, ID: "body.id", Type: `body.type ?? "webhook"`},
		"any":     {Kind: KindGeneric},
		"ce":      {Kind: KindCloudEvents},
	}
	h, err := New(Config{MaxBodyBytes: 1 << 20, Sources: sources}, pub, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	srv := serveHandler(t, h)

	chat := func(extra string) string {
		return `{"event":"chat_ended","chat":{"id":5000021,"rating":1` + extra + `},"visitor":{"name":"Jane"}}`
	}
	tests := []struct {
		name, source, body string
		contentType        string
		status             int
		errContains        string
	}{
		{name: "a body nested 9,999 deep by a field of a valid chat", source: "comm100",
			body: chat(`,"x":` + nested(9999-2)), status: 400, errContains: "nested too deep"},
		{name: "the body one level over the limit", source: "comm100",
			body: chat(`,"x":` + nested(event.MaxDepth-1)), status: 400, errContains: "more than 64 levels"},
		{name: "the body at the limit", source: "comm100",
			body: chat(`,"x":` + nested(event.MaxDepth-2)), status: 202},
		{name: "brackets inside strings do not count", source: "comm100",
			body: chat(`,"x":"` + strings.Repeat(`[{\"`, 500) + `"`), status: 202},
		{name: "a generic body at the limit that the data wraps one level deeper", source: "any",
			body: nested(event.MaxDepth), status: 400, errContains: "event data"},
		{name: "a chat whose end time is in the year 10000 once in UTC", source: "comm100",
			body: chat(`,"end_time":"9999-12-31T23:30:00-01:00"`), status: 400, errContains: "outside the years"},
		{name: "a CloudEvent whose time is before the year 0 once in UTC", source: "ce", contentType: "application/cloudevents+json",
			body: `{"specversion":"1.0","id":"1","source":"x","type":"t","time":"0000-01-01T00:00:00+01:00"}`, status: 400, errContains: "outside the years"},
		{name: "an id with a line break", source: "shop",
			body: `{"id":"a\r\nNats-Msg-Id: b","type":"order"}`, status: 400, errContains: "control character"},
		{name: "an id longer than a message id may be", source: "shop",
			body: `{"id":"` + strings.Repeat("x", event.MaxIDBytes+1) + `"}`, status: 400, errContains: "bytes long"},
		{name: "an event larger than the bus takes", source: "shop",
			body: `{"id":"big","pad":"` + strings.Repeat("<", 40<<10) + `"}`, status: 413, errContains: "larger than the bus takes"},
		{name: "rating one is accepted: the rules decide what it means", source: "comm100",
			body: `{"event":"chat_ended","chat":{"id":7,"rating":"one"}}`, status: 202},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/hooks/"+tt.source, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/json")
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			resp, out := do(t, req)
			stored := pub.take()
			if resp.StatusCode != tt.status {
				t.Fatalf("got %d %v, want %d", resp.StatusCode, out, tt.status)
			}
			if tt.status != http.StatusAccepted {
				msg, _ := out["error"].(string)
				if !strings.Contains(msg, tt.errContains) {
					t.Errorf("got error %q, want it to say %q", msg, tt.errContains)
				}
				if len(stored) != 0 {
					t.Errorf("a refused body was stored")
				}
				return
			}
			if len(stored) != 1 {
				t.Fatalf("got %d stored events, want 1", len(stored))
			}
			if _, err := event.Decode(stored[0]); err != nil {
				t.Errorf("accepted, but the consumer cannot decode it: %v", err)
			}
		})
	}
}

func TestDecodeAnyJSONSaysWhatIsWrong(t *testing.T) {
	for body, want := range map[string]string{
		`{"a":1} x`:        "body has data after the JSON value",
		`{"a":`:            "body is not JSON",
		nested(65):         "body is JSON nested too deep: more than 64 levels of objects and arrays",
		`{"a":1}` + "\n\t": "",
	} {
		_, err := decodeAnyJSON([]byte(body))
		switch {
		case want == "" && err != nil:
			t.Errorf("%.20q: got %v, want no error", body, err)
		case want != "" && (err == nil || !strings.HasPrefix(err.Error(), want)):
			t.Errorf("%.20q: got %v, want %q", body, err, want)
		}
	}
}

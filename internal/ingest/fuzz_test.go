package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/comm100bot/bot/internal/actions"
	"github.com/comm100bot/bot/internal/event"
	"github.com/comm100bot/bot/internal/ingest"
	"github.com/comm100bot/bot/internal/job"
	"github.com/comm100bot/bot/internal/rules"
)

// recorder stores what the JetStream publisher would: the encoded event,
// refused beyond the default max payload of a NATS server.
type recorder struct {
	mu     sync.Mutex
	stored [][]byte
}

func (r *recorder) Publish(_ context.Context, ev *event.Event) (bool, error) {
	data, err := event.Encode(ev)
	if err != nil {
		return false, fmt.Errorf("encode event %s: %w", ev.ID, err)
	}
	if len(data) > 1<<20 {
		return false, fmt.Errorf("publish event %s: %w", ev.ID, nats.ErrMaxPayload)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stored = append(r.stored, data)
	return false, nil
}

func (r *recorder) take() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.stored
	r.stored = nil
	return out
}

// fuzzSources are one source of each kind, with nothing to verify.
var fuzzSources = []struct {
	name        string
	cfg         ingest.SourceConfig
	contentType string
}{
	{"comm100", ingest.SourceConfig{Kind: ingest.KindComm100}, "application/json"},
	{"shop", ingest.SourceConfig{Kind: ingest.KindGeneric, Type: `type(body) == "map" && type(body.type) == "string" ? body.type : "webhook"`,
		ID: `type(body) == "map" ? body.id : nil`}, "application/json"},
	{"ce", ingest.SourceConfig{Kind: ingest.KindCloudEvents}, "application/cloudevents+json"},
}

// FuzzAcceptedEventsDecode holds the promise of a 202: for every body that
// ingest accepts, the stored event decodes with the rules consumer's
// decoder and evaluates against the shipped rules without a decode error,
// and every job it makes can be stored and decoded by the worker pool. Any
// other body gets a 4xx with a JSON error, never a 5xx while the bus works.
// The seeds run in the normal suite; `go test -fuzz FuzzAcceptedEventsDecode
// ./internal/ingest` searches further.
func FuzzAcceptedEventsDecode(f *testing.F) {
	for _, glob := range []string{"testdata/comm100/*.json", "../../rules/testdata/*.json"} {
		paths, _ := filepath.Glob(glob)
		for _, p := range paths {
			if strings.HasSuffix(p, ".golden.json") {
				continue
			}
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(uint8(0), b)
			f.Add(uint8(1), b)
		}
	}
	chat := func(extra string) []byte {
		return []byte(`{"event":"chat_ended","chat":{"id":5000021,"rating":1` + extra + `},"visitor":{"name":"Jane"}}`)
	}
	f.Add(uint8(0), chat(`,"x":`+strings.Repeat("[", 9997)+strings.Repeat("]", 9997)))
	f.Add(uint8(0), chat(`,"x":`+strings.Repeat("[", 62)+strings.Repeat("]", 62)))
	f.Add(uint8(0), []byte(`{"event":"chat_ended","chat":{"id":7,"rating":"one"}}`))
	f.Add(uint8(0), []byte(`{"event":"chat_ended","chat":{"id":7,"rating":{}}}`))
	f.Add(uint8(0), chat(`,"end_time":"9999-12-31T23:30:00-01:00"`))
	f.Add(uint8(0), []byte(`{"event":"ticket.AgentReplied","eventId":"e1","eventTime":253402300799999,"payload":[[1]]}`))
	f.Add(uint8(1), []byte(`{"id":"o-1","type":"order.shipped","order":{"total":1e400,"n":-0,"big":18446744073709551616}}`))
	f.Add(uint8(1), []byte(strings.Repeat("[", 64)+strings.Repeat("]", 64)))
	f.Add(uint8(2), []byte(`{"specversion":"1.0","id":"1","source":"x","type":"t","time":"0000-01-01T00:00:00+01:00"}`))
	f.Add(uint8(2), []byte(`{"specversion":"1.0","id":"1","source":"x","type":"t","data_base64":"WzFd"}`))

	var shapes rules.Shapes
	shapes.Add("comm100", ingest.Comm100Shapes())
	eng, err := rules.LoadDir("../../rules", actions.NewCatalog(), &shapes)
	if err != nil {
		f.Fatal(err)
	}
	cfg := ingest.Config{MaxBodyBytes: 1 << 20, Sources: map[string]ingest.SourceConfig{}}
	for _, s := range fuzzSources {
		cfg.Sources[s.name] = s.cfg
	}
	pub := &recorder{}
	h, err := ingest.New(cfg, pub, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		f.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		src := fuzzSources[int(kind)%len(fuzzSources)]
		req := httptest.NewRequest(http.MethodPost, "/hooks/"+src.name, strings.NewReader(string(body)))
		req.Header.Set("Content-Type", src.contentType)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		stored := pub.take()

		if rec.Code >= 500 {
			t.Fatalf("answered %d %s with a working bus", rec.Code, rec.Body)
		}
		// 202, or 200 for a sender that waits for an answer of its own (a bot engine).
		if rec.Code >= 300 {
			var out struct{ Error string }
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Error == "" {
				t.Fatalf("answered %d without a JSON error: %q", rec.Code, rec.Body)
			}
			if len(stored) != 0 {
				t.Fatalf("answered %d but stored the event", rec.Code)
			}
			return
		}
		if len(stored) != 1 {
			t.Fatalf("answered %d and stored %d events", rec.Code, len(stored))
		}
		ev, err := event.Decode(stored[0])
		if err != nil {
			t.Fatalf("answered %d, but the rules consumer cannot decode the stored event: %v\n%s", rec.Code, err, stored[0])
		}
		jobs, _ := eng.Match(ev, now) // evaluation errors are parked, not lost
		for _, j := range jobs {
			data, err := json.Marshal(&j)
			if err != nil {
				t.Fatalf("job %s cannot be stored: %v", j.ID, err)
			}
			var back job.Job
			if err := json.Unmarshal(data, &back); err != nil {
				t.Fatalf("job %s cannot be decoded by the pool: %v", j.ID, err)
			}
		}
	})
}

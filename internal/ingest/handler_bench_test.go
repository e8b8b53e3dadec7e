package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/comm100bot/bot/internal/bus"
)

// BenchmarkHandler measures ingest of Comm100 chat_ended webhooks, each with
// a unique chat id, published to a real embedded JetStream and answered 202
// after the PubAck, with as many requests in flight as -cpu times 32. It
// reports webhooks/s.
func BenchmarkHandler(b *testing.B) {
	ctx := b.Context()
	bs, err := bus.Open(ctx, bus.Config{StoreDir: b.TempDir(), Listen: "127.0.0.1:-1"}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer bs.Close()
	if err := bus.Setup(ctx, bs.JS, bus.Config{}); err != nil {
		b.Fatal(err)
	}
	h, err := New(Config{Sources: map[string]SourceConfig{"comm100": {Kind: KindComm100}}},
		&JetStreamPublisher{JS: bs.JS}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	body := []byte(fixture(b, "chat_ended"))
	var sample struct {
		Chat struct {
			ID string `json:"id"`
		} `json:"chat"`
	}
	if err := json.Unmarshal(body, &sample); err != nil || sample.Chat.ID == "" {
		b.Fatalf("chat_ended sample has no chat.id: %v", err)
	}
	// Each request gets its own chat id, so that none is a repeat.
	parts := bytes.Split(body, []byte(sample.Chat.ID))
	var seq atomic.Int64
	b.SetParallelism(32)
	b.ReportAllocs()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body := bytes.Join(parts, fmt.Appendf(nil, "8f14e45f-ceea-4e7a-9b21-%012x", seq.Add(1)))
			req := httptest.NewRequest(http.MethodPost, "/hooks/comm100", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			if rec.Code != http.StatusAccepted {
				b.Fatalf("got %d %s, want 202", rec.Code, rec.Body)
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "webhooks/s")
}

// BenchmarkDecodeComm100 is the CPU cost of turning a chat_ended body into
// an event and encoding it for the bus, without the bus.
func BenchmarkDecodeComm100(b *testing.B) {
	body := []byte(fixture(b, "chat_ended"))
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		ev, err := DecodeComm100("comm100", body, now)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ev.AppendJSON(nil); err != nil {
			b.Fatal(err)
		}
	}
}

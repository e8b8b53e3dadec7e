package event

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseJSONDepth(t *testing.T) {
	deep := func(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }
	tests := []struct {
		name, json string
		tooDeep    bool
	}{
		{"scalar", `1`, false},
		{"at the limit", deep(MaxDepth), false},
		{"one over", deep(MaxDepth + 1), true},
		{"arrays count too", strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), true},
		{"siblings do not add up", "[" + strings.Repeat(deep(MaxDepth-1)+",", 100) + "1]", false},
		{"brackets in strings do not count", `{"s":"` + strings.Repeat("[{", 100) + `"}`, false},
		{"escaped quotes do not end a string", `{"s":"\"` + strings.Repeat("[", 100) + `"}`, false},
		{"an escaped backslash ends before the quote", `{"s":"\\", "t":` + deep(MaxDepth) + `}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseJSON([]byte(tt.json))
			if got := errors.Is(err, ErrTooDeep); got != tt.tooDeep {
				t.Errorf("got %v, want too deep: %v", err, tt.tooDeep)
			}
			if !tt.tooDeep && err != nil {
				t.Errorf("got %v", err)
			}
		})
	}
	if _, err := ParseJSON([]byte(`{} {}`)); !errors.Is(err, ErrTrailingData) {
		t.Errorf("two values: got %v, want ErrTrailingData", err)
	}
}

func TestDepth(t *testing.T) {
	var v any = int64(1)
	for want := 0; want <= MaxDepth+3; want++ {
		got := Depth(v, MaxDepth)
		if want <= MaxDepth+1 && got != want || want > MaxDepth+1 && got != MaxDepth+1 {
			t.Fatalf("depth %d: got %d", want, got)
		}
		if want%2 == 0 {
			v = map[string]any{"k": v, "s": "x"}
		} else {
			v = []any{"x", v}
		}
	}
}

func TestValidate(t *testing.T) {
	ok := func() Event {
		return Event{ID: "chat.ended:1", Source: "comm100", Type: "chat.ended", Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
			Data: map[string]any{"chat": map[string]any{"id": "1"}}}
	}
	deep := any("x")
	for range MaxDepth {
		deep = []any{deep}
	}
	tests := []struct {
		name   string
		change func(*Event)
		want   string
	}{
		{"valid", func(*Event) {}, ""},
		{"no id", func(e *Event) { e.ID = "" }, "event has no id"},
		{"id with a line break", func(e *Event) { e.ID = "a\r\nb" }, "control character"},
		{"id too long", func(e *Event) { e.ID = strings.Repeat("x", MaxIDBytes+1) }, "1025 bytes long"},
		{"id not UTF-8", func(e *Event) { e.ID = "a\xff" }, "not valid UTF-8"},
		{"type with a space", func(e *Event) { e.Type = "chat ended" }, `event type "chat ended"`},
		{"type at the limit", func(e *Event) { e.Type = strings.Repeat("a.", MaxNameBytes/2-1) + "ab" }, ""},
		{"type too long, quoted in part", func(e *Event) { e.Type = strings.Repeat("a", 5000) }, `event type "` + strings.Repeat("a", 64) + `"...: is 5000 bytes long; at most 256`},
		{"source too long", func(e *Event) { e.Source = strings.Repeat("s", MaxNameBytes+1) }, "257 bytes long"},
		{"year 10000", func(e *Event) { e.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "outside the years"},
		{"data at the limit", func(e *Event) { e.Data = map[string]any{"x": deep.([]any)[0]} }, ""},
		{"data over the limit", func(e *Event) { e.Data = map[string]any{"x": deep} }, "more than 64 levels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := ok()
			tt.change(&e)
			err := e.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("got %v, want none", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("got %v, want an error saying %q", err, tt.want)
			}
			if err != nil {
				return
			}
			b, err := Encode(&e)
			if err != nil {
				t.Fatalf("a valid event does not encode: %v", err)
			}
			if _, err := Decode(b); err != nil {
				t.Errorf("a valid event does not decode: %v", err)
			}
		})
	}
}

// TestDecodeRefusesWhatIngestRefuses: an event stored by an older version,
// or by another publisher, beyond the limits is an error for the consumer,
// not a panic or a silent pass.
func TestDecodeRefusesWhatIngestRefuses(t *testing.T) {
	for name, stored := range map[string]string{
		"data too deep": `{"id":"x","source":"s","type":"t","time":"2026-01-01T00:00:00Z","data":{"a":` + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + `}}`,
		"no id":         `{"source":"s","type":"t","time":"2026-01-01T00:00:00Z","data":{}}`,
		"not JSON":      `{"id":`,
		"data a list":   `{"id":"x","source":"s","type":"t","time":"2026-01-01T00:00:00Z","data":[1]}`,
	} {
		if _, err := Decode([]byte(stored)); err == nil {
			t.Errorf("%s: decoded, want an error", name)
		}
	}
}

func TestExcerpt(t *testing.T) {
	for in, want := range map[string]string{
		"chat.ended":                  `"chat.ended"`,
		strings.Repeat("é", 40):       `"` + strings.Repeat("é", 32) + `"...`,  // 80 bytes, cut at 64
		"x" + strings.Repeat("é", 40): `"x` + strings.Repeat("é", 31) + `"...`, // cut before a split character
		"a\n\x00":                     `"a\n\x00"`,
	} {
		if got := Excerpt(in); got != want {
			t.Errorf("Excerpt(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestTopicAndSourceOf(t *testing.T) {
	ev := Event{Source: "shop", Type: "order.created"}
	if topic, ok := TopicOf(ev.BusSubject()); !ok || topic != "shop.order.created" {
		t.Errorf("TopicOf: %q %v", topic, ok)
	}
	if source, ok := SourceOf(ev.BusSubject()); !ok || source != "shop" {
		t.Errorf("SourceOf: %q %v", source, ok)
	}
	for _, subject := range []string{"dlq.x", "events.", "events.shop"} {
		if source, ok := SourceOf(subject); ok {
			t.Errorf("SourceOf(%q) = %q, want none", subject, source)
		}
	}
}

package main

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/lmittmann/tint"
)

// transcript is a long value of the kind a dry run logs: a ticket's body.
const transcript = "Visitor: Took forever to get an answer, and the answer was wrong.\nAgent: I am sorry to hear that; let me check your order.\n"

// logLine writes one record with attrs through the text handler without
// colour, with or without quoteLongValues, and returns the line.
func logLine(t testing.TB, quote bool, attrs ...any) string {
	t.Helper()
	var buf bytes.Buffer
	opts := &tint.Options{NoColor: true, TimeFormat: time.TimeOnly}
	if quote {
		opts.ReplaceAttr = quoteLongValues
	}
	slog.New(tint.NewTextHandler(&buf, opts)).Info("dry run: action not sent", attrs...)
	return buf.String()
}

func TestQuoteLongValuesWritesWhatTintWrites(t *testing.T) {
	cases := map[string][]any{
		"long string":        {"body", transcript},
		"short string":       {"subject", "Low rating (1) from Jane Cooper"},
		"long word":          {"id", strings.Repeat("x", 100)},
		"escape sequence":    {"body", "\x1b[31mred\x1b[0m " + transcript},
		"params":             {"params", map[string]any{"subject": "Low rating", "body": transcript, "tags": []any{"rating", 1.0}}},
		"params with escape": {"params", map[string]any{"body": "\x1b[2J" + transcript}},
		"short params":       {"params", map[string]any{}},
		"list":               {"tags", []any{transcript, 2.0}},
		"group":              {slog.Group("job", "body", transcript, "n", 3)},
		"quotes and newline": {"body", `He said "no" ` + transcript},
	}
	for name, attrs := range cases {
		t.Run(name, func(t *testing.T) {
			want, got := logLine(t, false, attrs...), logLine(t, true, attrs...)
			// The time is written to the second: compare past it.
			_, want, _ = strings.Cut(want, " ")
			_, got, _ = strings.Cut(got, " ")
			if got != want {
				t.Errorf("with quoteLongValues:\n%s\nwithout:\n%s", got, want)
			}
		})
	}
}

func TestQuoteLongValuesKeepsWhatTintWouldCut(t *testing.T) {
	// tint's scan stops at the first invalid byte, or at a U+FFFD; a
	// quotedText is written whole, an invalid byte escaped.
	for body, want := range map[string]string{
		transcript + "\xff and what follows":   `\xff and what follows`,
		transcript + "\uFFFD and what follows": "\uFFFD and what follows",
	} {
		line := logLine(t, true, "body", body)
		if !strings.Contains(line, want) {
			t.Errorf("line %q: want the value whole, with %q", line, want)
		}
		if line := logLine(t, false, "body", body); strings.Contains(line, "what follows") {
			t.Logf("tint no longer cuts a value at %q: %q", want, line)
		}
	}
}

// BenchmarkDryRunLine is the text line of a dry run's ticket without
// colour, as tint writes it and with quoteLongValues.
func BenchmarkDryRunLine(b *testing.B) {
	params := map[string]any{"subject": "Low rating (1) from Jane Cooper", "body": strings.Repeat(transcript, 8), "tags": []any{"rating"}}
	for _, quote := range []bool{false, true} {
		name := "tint"
		if quote {
			name = "quoteLongValues"
		}
		b.Run(name, func(b *testing.B) {
			opts := &tint.Options{NoColor: true, TimeFormat: time.TimeOnly}
			if quote {
				opts.ReplaceAttr = quoteLongValues
			}
			log := slog.New(tint.NewTextHandler(io.Discard, opts))
			b.ReportAllocs()
			for b.Loop() {
				log.Info("dry run: action not sent", "job_id", "01J0000000000000000000000", "rule", "low-rated-chat-ticket", "action", "comm100.ticket.create", "params", params)
			}
		})
	}
}

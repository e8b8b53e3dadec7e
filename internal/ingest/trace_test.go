package ingest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime/trace"
	"testing"
	"time"

	xtrace "golang.org/x/exp/trace"
)

// TestSlowWebhooksAreMarkedInATrace: while an execution trace runs, a
// webhook answered after more than SlowWebhook is logged in it with its
// time; a quick one is not.
func TestSlowWebhooksAreMarkedInATrace(t *testing.T) {
	if trace.IsEnabled() {
		t.Skip("the test is traced already (go test -trace)")
	}
	var buf bytes.Buffer
	if err := trace.Start(&buf); err != nil {
		t.Fatal(err)
	}
	markSlow(context.Background(), time.Now().Add(-15*time.Millisecond))
	markSlow(context.Background(), time.Now())
	trace.Stop()

	r, err := xtrace.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	var marks []string
	for {
		ev, err := r.ReadEvent()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if ev.Kind() == xtrace.EventLog && ev.Log().Category == SlowWebhookCategory {
			marks = append(marks, ev.Log().Message)
		}
	}
	if len(marks) != 1 {
		t.Fatalf("marks %q: want the slow webhook's alone", marks)
	}
	d, err := ParseSlowMark(marks[0])
	if err != nil || d < 15*time.Millisecond || d > 60*time.Millisecond {
		t.Errorf("mark %q (%s, %v): want about 15ms", marks[0], d, err)
	}
}

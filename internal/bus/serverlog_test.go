package bus

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestServerLogHoldsBackRepeats: a statement the server repeats for every
// message is logged once a minute with the count held back; different
// statements, and the same words with other numbers, are told apart as the
// server's own rate limiting does.
func TestServerLogHoldsBackRepeats(t *testing.T) {
	var buf bytes.Buffer
	l := newServerLog(slog.New(slog.NewTextHandler(&buf, nil)))
	now := time.Unix(0, 0)
	l.now = func() time.Time { return now }

	for range 100 {
		l.Errorf("%s", "JetStream failed to store a msg on stream 'EVENTS': write 1.blk: no space left on device")
		l.Warnf("stream %s slow", "EVENTS")
	}
	l.Errorf("%s", "JetStream failed to store a msg on stream 'EVENTS': write 2.blk: no space left on device") // same words, other numbers
	l.Errorf("%s", "JetStream stream 'EVENTS' critical write error")
	now = now.Add(time.Minute)
	l.Errorf("%s", "JetStream failed to store a msg on stream 'EVENTS': write 1.blk: no space left on device")
	l.Noticef("Starting nats-server") // debug: not shown at info

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{
		`level=ERROR msg="JetStream failed to store a msg on stream 'EVENTS': write 1.blk: no space left on device" component=nats-server`,
		`level=WARN msg="stream EVENTS slow" component=nats-server`,
		`level=ERROR msg="JetStream stream 'EVENTS' critical write error" component=nats-server`,
		`level=ERROR msg="JetStream failed to store a msg on stream 'EVENTS': write 1.blk: no space left on device" component=nats-server repeated_since_last_logged=100`,
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, w := range want {
		if !strings.HasSuffix(lines[i], w) {
			t.Errorf("line %d: got %s\nwant ...%s", i, lines[i], w)
		}
	}
	l.Fatalf("Can't start JetStream: %v", "storage directory is not writable")
	if got := l.fatalStatement(); got != "Can't start JetStream: storage directory is not writable" {
		t.Errorf("fatal statement: got %q", got)
	}
}

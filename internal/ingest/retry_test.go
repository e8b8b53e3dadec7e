package ingest

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/comm100bot/bot/internal/event"
	"github.com/comm100bot/bot/internal/testenv"
)

func startJetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	return testenv.Connect(t, testenv.JetStream(t).ClientURL())
}

func testEvent(id string) *event.Event {
	return &event.Event{ID: id, Source: "comm100", Type: "chat.ended", Time: time.Now().UTC(), Data: map[string]any{}}
}

// TestPublishWaitsForALeader: while no stream answers (as while a cluster
// elects the stream's leader), the publish is tried again and succeeds once
// the stream answers, within its timeout.
func TestPublishWaitsForALeader(t *testing.T) {
	js := startJetStream(t)
	p := &JetStreamPublisher{JS: js, Timeout: 5 * time.Second}
	const late = 700 * time.Millisecond
	start := time.Now()
	errc := make(chan error, 1)
	time.AfterFunc(late, func() {
		_, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}})
		errc <- err
	})
	dup, err := p.Publish(t.Context(), testEvent("chat.ended:1"))
	if err != nil || dup {
		t.Fatalf("publish: duplicate %v, %v; want it stored once the stream answers", dup, err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < late {
		t.Errorf("stored after %s, before the stream existed", took)
	}
}

// TestPublishGivesUpAtItsTimeout: a stream that never answers is given up
// when the publish times out, with the reason.
func TestPublishGivesUpAtItsTimeout(t *testing.T) {
	js := startJetStream(t)
	p := &JetStreamPublisher{JS: js, Timeout: 600 * time.Millisecond}
	start := time.Now()
	_, err := p.Publish(t.Context(), testEvent("chat.ended:2"))
	if !errors.Is(err, jetstream.ErrNoStreamResponse) {
		t.Fatalf("publish to no stream: %v, want %v", err, jetstream.ErrNoStreamResponse)
	}
	if took := time.Since(start); took < p.Timeout/2 {
		t.Errorf("gave up after %s, want it to try for about its timeout of %s", took, p.Timeout)
	}
}

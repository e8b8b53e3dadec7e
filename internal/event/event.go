// Package event defines the canonical event that flows from ingest through the
// rules engine. Its attribute names follow CloudEvents 1.0.
package event

import (
	"fmt"
	"strings"
	"time"
)

// Event is one thing that happened in Comm100 or in an outside system, after
// verification and normalization. It is what rules see.
type Event struct {
	// ID identifies the event for deduplication. The same webhook delivered
	// twice yields the same ID.
	ID string `json:"id"`
	// Source is the configured source name the webhook arrived on, such as "comm100".
	Source string `json:"source"`
	// Type is the dotted event type, such as "chat.ended".
	Type string `json:"type"`
	// Time is when the event happened, or when it was received if the body says nothing.
	Time time.Time `json:"time"`
	// Subject optionally names what the event is about, such as a chat id.
	Subject string `json:"subject,omitempty"`
	// Data is the normalized body.
	Data map[string]any `json:"data"`
}

// Topic is the event's "source.type" name that rule patterns match against.
func (e *Event) Topic() string { return e.Source + "." + e.Type }

// Subject prefix of every event on the bus.
const SubjectPrefix = "events"

// BusSubject is the NATS subject the event is published on: events.<source>.<type>.
func (e *Event) BusSubject() string { return SubjectPrefix + "." + e.Topic() }

// Validate reports whether the event can be published: every attribute that
// becomes part of a subject must be a valid, non-empty dotted name.
func (e *Event) Validate() error {
	if e.ID == "" {
		return fmt.Errorf("event has no id")
	}
	if err := ValidName(e.Source, false); err != nil {
		return fmt.Errorf("event source %q: %w", e.Source, err)
	}
	if err := ValidName(e.Type, true); err != nil {
		return fmt.Errorf("event type %q: %w", e.Type, err)
	}
	return nil
}

// ValidName checks that s can be used as one (or, with dots allowed, several)
// tokens of a NATS subject.
func ValidName(s string, dots bool) error {
	if s == "" {
		return fmt.Errorf("is empty")
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" {
			return fmt.Errorf("has an empty segment")
		}
		if !dots && tok != s {
			return fmt.Errorf("must not contain dots")
		}
		for _, r := range tok {
			switch {
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			default:
				return fmt.Errorf("has character %q; use letters, digits, '_' and '-'", r)
			}
		}
	}
	return nil
}

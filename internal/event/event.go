// Package event defines the canonical event that flows from ingest through the
// rules engine. Its attribute names follow CloudEvents 1.0.
package event

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
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

// TopicOf is the topic, <source>.<type>, of an event stored on subject (its
// BusSubject); ok is false for a subject that is not an event's.
func TopicOf(subject string) (topic string, ok bool) {
	topic, ok = strings.CutPrefix(subject, SubjectPrefix+".")
	return topic, ok && topic != ""
}

// SourceOf is the source of an event stored on subject (its BusSubject).
func SourceOf(subject string) (source string, ok bool) {
	topic, ok := TopicOf(subject)
	if !ok {
		return "", false
	}
	source, _, ok = strings.Cut(topic, ".")
	return source, ok
}

// Key is what tells the event from every other: its source and its id,
// as <source>/<id>. Two sources may use the same ids (order 1001 of a shop,
// contact 1001 of a CRM); duplicates are recognised by the key, which is
// the message id of the event on the bus.
func (e *Event) Key() string { return e.Source + "/" + e.ID }

// Validate reports whether the event can be published and, once stored,
// decoded and evaluated: every attribute that becomes part of a subject must
// be a valid, non-empty dotted name, the id fit in a message header, the
// time be one JSON can hold, and the data keep within MaxDepth.
func (e *Event) Validate() error {
	if err := validID(e.ID); err != nil {
		return err
	}
	if err := ValidName(e.Source, false); err != nil {
		return fmt.Errorf("event source %s: %w", Excerpt(e.Source), err)
	}
	if err := ValidName(e.Type, true); err != nil {
		return fmt.Errorf("event type %s: %w", Excerpt(e.Type), err)
	}
	if y := e.Time.Year(); y < 0 || y > 9999 {
		return fmt.Errorf("event time %s is outside the years 0 to 9999", e.Time.Format(time.RFC3339))
	}
	if Depth(e.Data, MaxDepth) > MaxDepth {
		return fmt.Errorf("event data: %w: more than %d levels of objects and arrays", ErrTooDeep, MaxDepth)
	}
	return nil
}

// validID checks that an event id can be a message id and part of a job id.
func validID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("event has no id")
	case len(id) > MaxIDBytes:
		return fmt.Errorf("event id is %d bytes long; at most %d are allowed", len(id), MaxIDBytes)
	case !utf8.ValidString(id):
		return fmt.Errorf("event id is not valid UTF-8")
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return fmt.Errorf("event id %s has a control character", Excerpt(id))
		}
	}
	return nil
}

// ValidName checks that s can be used as one (or, with dots allowed, several)
// tokens of a NATS subject.
func ValidName(s string, dots bool) error {
	if s == "" {
		return fmt.Errorf("is empty")
	}
	if len(s) > MaxNameBytes {
		return fmt.Errorf("is %d bytes long; at most %d are allowed", len(s), MaxNameBytes)
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

// maxExcerpt is how much of a value from a request an error quotes.
const maxExcerpt = 64

// Excerpt quotes s for an error or a log line, as %q does, cut to its first
// maxExcerpt bytes (on a character's boundary) and followed by "..." when
// it was longer: a value a sender chose can be a megabyte long.
func Excerpt(s string) string {
	if len(s) <= maxExcerpt {
		return strconv.Quote(s)
	}
	n := maxExcerpt
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return strconv.Quote(s[:n]) + "..."
}

package rules

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/event"
)

// Why an event was parked.
const (
	// ParkUndecodable: the stored event could not be decoded at all, so no
	// rule saw it.
	ParkUndecodable = "undecodable"
	// ParkEvaluate: a rule's condition or one of its actions failed on the
	// event, such as `data.chat.rating > 0` on a rating of "one".
	ParkEvaluate = "evaluate"
	// ParkUnencodable: a rule made a job whose values cannot be stored,
	// such as the +Inf of a division by zero.
	ParkUnencodable = "unencodable"
)

// ParkedKind is the Kind of every parked event, as opposed to a dead job.
const ParkedKind = "event"

// ParkedEvent is an event that a rule could not decode or evaluate, kept on
// the DLQ stream with what went wrong until it is redriven or purged. The
// rules that did run on it ran: their jobs were published.
type ParkedEvent struct {
	Kind    string `json:"kind"`
	EventID string `json:"event_id"`
	// Subject is where the event was, and is republished by a redrive.
	Subject string `json:"subject"`
	// StoredID is the id the event was stored under on the bus (its key,
	// <source>/<id>, or the bare id of an older version); a redrive carries
	// it, so that the event's jobs keep their ids.
	StoredID string `json:"stored_id,omitempty"`
	// EvaluateAt is the time the rules evaluated a replayed copy at
	// (bus.EvaluateAtHeader), which a redrive keeps.
	EvaluateAt string `json:"evaluate_at,omitempty"`
	// Rule is the rule that failed; empty when the event could not be decoded.
	Rule   string    `json:"rule,omitempty"`
	Reason string    `json:"reason"`
	Error  string    `json:"error"`
	Parked time.Time `json:"parked"`
	// Event is the event as it was stored. An event that could not be
	// decoded is kept in Raw instead, as bytes (base64 in JSON).
	Event json.RawMessage `json:"event,omitempty"`
	Raw   []byte          `json:"raw,omitempty"`
}

// ParkedLetter is a ParkedEvent as stored, with its sequence in the DLQ
// stream: the id that `bot dlq show` and `bot dlq redrive` take.
type ParkedLetter struct {
	Seq uint64 `json:"seq"`
	ParkedEvent
}

// stored is the event as it was on the bus.
func (p *ParkedEvent) stored() []byte {
	if p.Event != nil {
		return p.Event
	}
	return p.Raw
}

// Parking keeps parked events on the DLQ stream, under
// bus.ParkedSubjectPrefix, beside the dead jobs.
type Parking struct {
	JS jetstream.JetStream
}

// IsParked reports whether a DLQ message on subject is a parked event.
func IsParked(subject string) bool { return strings.HasPrefix(subject, bus.ParkedSubjectPrefix) }

// Put parks an event that was delivered from stream sequence seq of EVENTS.
// Parking the same delivery for the same rule twice (a redelivery that
// failed the same way) stores it once; the event redriven is a new message,
// so if it fails again it is parked again.
func (p *Parking) Put(ctx context.Context, pe *ParkedEvent, seq uint64, data []byte) error {
	pe.Kind = ParkedKind
	if pe.Reason == ParkUndecodable {
		// As bytes: it may not be JSON, or be JSON too deep to nest in another.
		pe.Raw = data
	} else {
		pe.Event = data
	}
	body, err := json.Marshal(pe)
	if err != nil {
		return fmt.Errorf("encode parked event %s: %w", pe.EventID, err)
	}
	subject := bus.ParkedSubjectPrefix + "unknown"
	if rest, ok := event.TopicOf(pe.Subject); ok {
		subject = bus.ParkedSubjectPrefix + rest
	}
	msg := &nats.Msg{Subject: subject, Data: body, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("parked/%d/%s", seq, pe.Rule))
	if _, err := p.JS.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("park event %s: %w", pe.EventID, err)
	}
	return nil
}

// List returns every parked event, oldest first.
func (p *Parking) List(ctx context.Context) ([]ParkedLetter, error) {
	s, err := p.JS.Stream(ctx, bus.DeadStream)
	if err != nil {
		return nil, fmt.Errorf("open DLQ: %w", err)
	}
	var out []ParkedLetter
	for seq := uint64(1); ; {
		raw, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(bus.ParkedSubjectPrefix+">"))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list parked events: %w", err)
		}
		pl, err := decodeParked(raw)
		if err != nil {
			return nil, err
		}
		out = append(out, *pl)
		seq = raw.Sequence + 1
	}
}

// Get returns the parked event with sequence seq.
func (p *Parking) Get(ctx context.Context, seq uint64) (*ParkedLetter, error) {
	s, err := p.JS.Stream(ctx, bus.DeadStream)
	if err != nil {
		return nil, fmt.Errorf("open DLQ: %w", err)
	}
	raw, err := s.GetMsg(ctx, seq)
	if err != nil {
		return nil, fmt.Errorf("parked event %d: %w", seq, err)
	}
	if !IsParked(raw.Subject) {
		return nil, fmt.Errorf("DLQ entry %d is a dead job, not a parked event", seq)
	}
	return decodeParked(raw)
}

func decodeParked(raw *jetstream.RawStreamMsg) (*ParkedLetter, error) {
	pl := &ParkedLetter{Seq: raw.Sequence}
	if err := json.Unmarshal(raw.Data, &pl.ParkedEvent); err != nil {
		return nil, fmt.Errorf("parked event %d: %w", raw.Sequence, err)
	}
	return pl, nil
}

// Redrive republishes the parked event where it was, so that the rules run
// on it again, and removes it from the DLQ. Every rule that listens to it
// runs, not only the one that failed: the jobs of the rules that already ran
// have the same ids as before, so ACTIONS refuses them while the first
// copies are in it, and after that the worker pool's record of finished
// jobs keeps them from running twice.
func (p *Parking) Redrive(ctx context.Context, seq uint64) (*ParkedLetter, error) {
	pl, err := p.Get(ctx, seq)
	if err != nil {
		return nil, err
	}
	msg := &nats.Msg{Subject: pl.Subject, Data: pl.stored(), Header: nats.Header{}}
	// A new message id: the event id may still be in the duplicate window,
	// and the event was stored already; this is a second delivery of it.
	stored := pl.StoredID
	if stored == "" {
		stored = pl.EventID // parked by an older version
	}
	msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s/redrive/%d", stored, seq))
	msg.Header.Set(bus.EventIDHeader, stored)
	if pl.EvaluateAt != "" {
		msg.Header.Set(bus.EvaluateAtHeader, pl.EvaluateAt)
	}
	if _, err := p.JS.PublishMsg(ctx, msg); err != nil {
		return nil, fmt.Errorf("redrive parked event %d: %w", seq, err)
	}
	s, err := p.JS.Stream(ctx, bus.DeadStream)
	if err != nil {
		return nil, err
	}
	if err := s.DeleteMsg(ctx, seq); err != nil {
		return nil, fmt.Errorf("redrive parked event %d: event republished but not removed from the DLQ: %w", seq, err)
	}
	return pl, nil
}

// Size returns how many events are parked.
func (p *Parking) Size(ctx context.Context) (uint64, error) {
	s, err := p.JS.Stream(ctx, bus.DeadStream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(bus.ParkedSubjectPrefix+">"))
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n, nil
}

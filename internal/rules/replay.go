package rules

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/idhash"
)

// Replayed is what Replay stored again.
type Replayed struct {
	// Events is how many events were stored again; Repeats how many
	// stored copies of an event already replayed were passed over (an event
	// redriven from the DLQ, or replayed before, is in EVENTS twice).
	Events, Repeats int
	// First and Last are the EVENTS sequences of the first and the last
	// event replayed.
	First, Last uint64
}

// ReplayOptions are how Replay replays.
type ReplayOptions struct {
	// DryRun stores nothing: Replay only counts.
	DryRun bool
	// AtEventTime has the rules evaluate each copy at the time its event
	// was first stored, not when they read it: now(), the business-hours
	// helpers without a time, and delays count from then (a delay already
	// over runs at once).
	AtEventTime bool
}

// replayWindow is how many replayed events may wait for their PubAcks.
const replayWindow = 256

// replayWait is how long Replay waits for the next stored event before it
// takes the stream to have no more for it.
const replayWait = 5 * time.Second

// Replay stores again, at the end of EVENTS, every event stored there since
// since (up to the last one stored when Replay starts), once per event, so
// that the rules run on them again: after a rule was added or fixed. Every
// rule that listens to an event runs, not only the new one; the jobs that
// other rules made before have the same ids, so ACTIONS refuses them while
// the first copies are in it, and after that the pool's record of finished
// jobs keeps them from running twice, for as long as the record is kept.
// The rules evaluate each copy as they would a new event: now() is the
// time of the replay, and delays count from it, unless AtEventTime.
//
// Each copy carries the id its event was stored under in bus.EventIDHeader,
// as a redriven parked event does, and has a message id of its own,
// <stored id>/replay/<run>/<seq>, new at every run.
func Replay(ctx context.Context, js jetstream.JetStream, since time.Time, o ReplayOptions) (Replayed, error) {
	var out Replayed
	s, err := js.Stream(ctx, bus.EventsStream)
	if err != nil {
		return out, fmt.Errorf("open %s: %w", bus.EventsStream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return out, fmt.Errorf("read %s: %w", bus.EventsStream, err)
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 || info.State.LastTime.Before(since) {
		return out, nil
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{bus.EventsSubjects},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &since,
	})
	if err != nil {
		return out, fmt.Errorf("read %s: %w", bus.EventsStream, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return out, fmt.Errorf("read %s: %w", bus.EventsStream, err)
	}
	defer it.Stop()

	stop := context.AfterFunc(ctx, it.Stop) // Next returns once ctx is done
	defer stop()
	run := time.Now().UnixNano()
	hash := idhash.New()
	seen := map[idhash.Sum]struct{}{}
	var pending []jetstream.PubAckFuture
	wait := func() error {
		for _, f := range pending {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return fmt.Errorf("store event %s again: %w", f.Msg().Header.Get(bus.EventIDHeader), err)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		pending = pending[:0]
		return nil
	}
	// fail returns err once the copies sent so far are stored, so that out
	// counts only copies that are.
	fail := func(err error) (Replayed, error) {
		if werr := wait(); werr != nil {
			return out, werr
		}
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return out, err
	}
	for {
		msg, err := it.Next(jetstream.NextMaxWait(replayWait))
		if errors.Is(err, nats.ErrTimeout) {
			// Nothing more came: the events between had left the stream
			// (nats.events_max_age), or the server is too slow to say.
			return fail(fmt.Errorf("read %s: no event came for %s before sequence %d (the last one stored when the replay started); replayed %d, up to sequence %d",
				bus.EventsStream, replayWait, last, out.Events, out.Last))
		}
		if err != nil {
			return fail(fmt.Errorf("read %s: %w", bus.EventsStream, err))
		}
		md, err := msg.Metadata()
		if err != nil {
			return fail(fmt.Errorf("read %s: %w", bus.EventsStream, err))
		}
		seq := md.Sequence.Stream
		if seq > last {
			// Stored after Replay started: new events, or its own copies.
			return out, wait()
		}
		id := storedEventID(msg)
		sum := hash.Of(id)
		if _, dup := seen[sum]; dup || id == "" {
			out.Repeats++
		} else {
			seen[sum] = struct{}{}
			if out.Events == 0 {
				out.First = seq
			}
			out.Events++
			out.Last = seq
			if !o.DryRun {
				copied := &nats.Msg{Subject: msg.Subject(), Data: msg.Data(), Header: nats.Header{}}
				copied.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s/replay/%d/%d", id, run, seq))
				copied.Header.Set(bus.EventIDHeader, id)
				if at := msg.Headers().Get(bus.EvaluateAtHeader); at != "" {
					// A copy of a copy keeps the time its event was first
					// evaluated at.
					copied.Header.Set(bus.EvaluateAtHeader, at)
				} else if o.AtEventTime {
					copied.Header.Set(bus.EvaluateAtHeader, md.Timestamp.UTC().Format(time.RFC3339Nano))
				}
				f, err := js.PublishMsgAsync(copied)
				if err != nil {
					out.Events--
					return fail(fmt.Errorf("store event %s again: %w", id, err))
				}
				if pending = append(pending, f); len(pending) >= replayWindow {
					if err := wait(); err != nil {
						return out, err
					}
				}
			}
		}
		if seq >= last || md.NumPending == 0 {
			return out, wait()
		}
	}
}

package rules

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/comm100bot/bot/internal/bus"
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

// replayWindow is how many replayed events may wait for their PubAcks.
const replayWindow = 256

// Replay stores again, at the end of EVENTS, every event stored there since
// since (up to the last one stored when Replay starts), once per event id,
// so that the rules run on them again: after a rule was added or fixed.
// Every rule that listens to an event runs, not only the new one; the jobs
// that other rules made before have the same ids, so ACTIONS refuses them
// while the first copies are in it, and after that the pool's record of
// finished jobs keeps them from running twice, for as long as the record is
// kept. Each copy has a message id of its own, <event id>/replay/<seq>, and
// carries its event id in bus.EventIDHeader, as a redriven parked event
// does. With dryRun nothing is stored: Replay only counts.
func Replay(ctx context.Context, js jetstream.JetStream, since time.Time, dryRun bool) (Replayed, error) {
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
	seen := map[string]bool{}
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
	for {
		batch, err := cons.Fetch(replayWindow, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return out, fmt.Errorf("read %s: %w", bus.EventsStream, err)
		}
		got, reached := 0, false
		for msg := range batch.Messages() {
			got++
			md, err := msg.Metadata()
			if err != nil {
				return out, fmt.Errorf("read %s: %w", bus.EventsStream, err)
			}
			seq := md.Sequence.Stream
			if reached = seq >= last; seq > last {
				// Stored after Replay started: new events, or its own copies.
				continue
			}
			id := storedEventID(msg)
			if id == "" || seen[id] {
				out.Repeats++
				continue
			}
			seen[id] = true
			if out.Events == 0 {
				out.First = seq
			}
			out.Events++
			out.Last = seq
			if dryRun {
				continue
			}
			copied := &nats.Msg{Subject: msg.Subject(), Data: msg.Data(), Header: nats.Header{}}
			copied.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s/replay/%d", id, seq))
			copied.Header.Set(bus.EventIDHeader, id)
			f, err := js.PublishMsgAsync(copied)
			if err != nil {
				return out, fmt.Errorf("store event %s again: %w", id, err)
			}
			pending = append(pending, f)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return out, fmt.Errorf("read %s: %w", bus.EventsStream, err)
		}
		if err := wait(); err != nil {
			return out, err
		}
		if got == 0 || reached {
			return out, nil
		}
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/rules"
)

func eventsCommand() *command {
	return &command{
		name:    "events",
		summary: "work with the events the bot stored (connects to the running bot's NATS)",
		subs: []*command{{
			name: "replay", args: "--since DURATION [flags]", summary: "run the rules again over the events stored lately",
			long: `Stores again every event stored in the last DURATION (once per event id),
so that the running bot's rules run on them again: after a rule was added or
fixed. Every rule that listens to an event runs, not only the new one; a job
that ran before has the same id and is not run again, as long as the record
of finished jobs is kept (dispatch.retry_for + 24h), so DURATION may not go
back further than that. Jobs that keep no record (those of a dry run, and log
jobs) do run again. The rules evaluate each event as a new one: now() is the
time of the replay (a rule that calls businessHours without the event's own
time decides by it), and delayed actions count from it; with --at-event-time
they evaluate it at the time it was first stored, and a delay already over
runs at once.

It connects to the NATS server of the running bot: nats.url, or the embedded
server's nats.listen address, from the config file (--config, default bot.yaml
if present), BOT_ environment variables or the flags below.`,
			run: eventsReplay,
		}},
	}
}

func eventsReplay(ctx context.Context, c *command, e *cmdEnv, args []string) error {
	fs := c.flagSet(e)
	since := fs.Duration("since", 0, "replay the events stored in the last DURATION, e.g. 30m or 6h (required)")
	dryRun := fs.Bool("dry-run", false, "count the events that would be replayed; store nothing")
	atEventTime := fs.Bool("at-event-time", false, "evaluate each event at the time it was first stored: now(), businessHours without a time, and delays count from then")
	cfg, err := dlqParse(c, e, fs, args)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return c.usageError(e, "unexpected argument %q", fs.Arg(0))
	}
	if *since <= 0 {
		return c.usageError(e, "want --since DURATION, such as 30m or 6h")
	}
	b, err := connectBus(ctx, cfg)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := recordsCover(ctx, b.JS, *since); err != nil {
		return err
	}
	from := time.Now().Add(-*since)
	got, err := rules.Replay(ctx, b.JS, from, rules.ReplayOptions{DryRun: *dryRun, AtEventTime: *atEventTime})
	if err != nil {
		return err
	}
	verb := "replayed"
	if *dryRun {
		verb = "would replay"
	}
	if got.Events == 0 {
		fmt.Fprintf(e.stdout, "no events stored since %s\n", from.UTC().Format(time.RFC3339))
		return nil
	}
	fmt.Fprintf(e.stdout, "%s %d event(s) stored since %s (%s sequences %d to %d", verb, got.Events,
		from.UTC().Format(time.RFC3339), bus.EventsStream, got.First, got.Last)
	if got.Repeats > 0 {
		fmt.Fprintf(e.stdout, "; %d stored copies of them passed over", got.Repeats)
	}
	fmt.Fprintln(e.stdout, ")")
	return nil
}

// recordsCover refuses a replay that reaches further back than the record
// of finished jobs: the jobs of older events would run a second time.
func recordsCover(ctx context.Context, js jetstream.JetStream, since time.Duration) error {
	kv, err := js.KeyValue(ctx, bus.DoneBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		// No job ever finished: none can run twice.
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the record of finished jobs: %w", err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return fmt.Errorf("read the record of finished jobs: %w", err)
	}
	if ttl := st.TTL(); ttl > 0 && since > ttl {
		return fmt.Errorf("--since %s: finished jobs are remembered for %s (dispatch.retry_for + 24h); the jobs of older events would run again", since, ttl)
	}
	return nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/comm100bot/bot/internal/actions"
	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/rules"
)

// connectBus connects a command to the bus of a running bot: nats.url, or
// the embedded server's nats.listen address.
func connectBus(ctx context.Context, cfg *Config) (*bus.Bus, error) {
	nc := cfg.NATS
	if nc.URL == "" {
		nc.URL = "nats://" + nc.Listen
	}
	b, err := bus.Open(ctx, nc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return nil, fmt.Errorf("%w (is `bot serve` running?)", err)
	}
	return b, nil
}

// dlqFlags are the config keys a dlq command reads: where the bus is.
var dlqFlags = []string{"nats.url", "nats.listen"}

func dlqCommand() *command {
	const where = `
It connects to the NATS server of the running bot: nats.url, or the embedded
server's nats.listen address, from the config file (--config, default bot.yaml
if present), BOT_ environment variables or the flags below.`
	return &command{
		name:    "dlq",
		summary: "inspect and replay jobs that failed for good and events parked by a rule (connects to the running bot's NATS)",
		subs: []*command{
			{name: "list", args: "[flags]", summary: "list the dead letters and the parked events",
				long: "Lists the dead letters: jobs that failed for good, with their rule,\naction, attempts and last error; then the parked events: events that a\nrule could not evaluate (or that could not be decoded), with their event\nid, rule and error.\n" + where,
				run:  dlqList},
			{name: "show", args: "[flags] SEQ", summary: "show one dead letter or parked event with its whole story",
				long: "Shows DLQ entry SEQ (the SEQ column of bot dlq list) as JSON: for a dead\nletter the job, the reason and every attempt; for a parked event the\nevent as stored, the rule and the error.\n" + where,
				run:  dlqShow},
			{name: "redrive", args: "[flags] SEQ... | --all", summary: "send dead letters back to the worker pool, parked events back to the rules",
				long: "Sends the dead letters SEQ... (or every one, with --all) back to the\nworker pool, each job under an id of its own (<id>/redrive/<SEQ>), and the\nparked events back to the rules, which all run on them again (jobs that\nalready ran are not run twice); then removes them from the DLQ. A dead\nletter whose job succeeded since (a copy of it ran) is removed, not run.\n" + where,
				run:  dlqRedrive},
			{name: "purge", args: "[flags]", summary: "delete every dead letter and parked event",
				long: "Deletes every dead letter and parked event.\n" + where,
				run:  dlqPurge},
		},
	}
}

// dlqParse parses a dlq command's flags, which fs gets besides its own, and
// loads the configuration.
func dlqParse(c *command, e *cmdEnv, fs *pflag.FlagSet, args []string) (*Config, error) {
	configFlags(fs, dlqFlags...)
	if err := c.parse(fs, e, args); err != nil {
		return nil, err
	}
	return loadConfig(fs, e.environ)
}

// deadLetters is the DLQ of the running bot: dead jobs and parked events.
type deadLetters struct {
	*actions.DLQ
	events *rules.Parking
}

// dlqOpen connects to the DLQ of the running bot.
func dlqOpen(ctx context.Context, cfg *Config) (*deadLetters, func(), error) {
	b, err := connectBus(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	return &deadLetters{DLQ: &actions.DLQ{JS: b.JS}, events: &rules.Parking{JS: b.JS}}, b.Close, nil
}

// parked tells a parked event from a dead job by where it is stored.
func (d *deadLetters) parked(ctx context.Context, seq uint64) (bool, error) {
	s, err := d.JS.Stream(ctx, bus.DeadStream)
	if err != nil {
		return false, fmt.Errorf("open DLQ: %w", err)
	}
	raw, err := s.GetMsg(ctx, seq)
	if err != nil {
		return false, fmt.Errorf("DLQ entry %d: %w", seq, err)
	}
	return rules.IsParked(raw.Subject), nil
}

// dlqOpenNoArgs parses the flags of a subcommand that takes no arguments
// and connects to the DLQ.
func dlqOpenNoArgs(ctx context.Context, c *command, e *cmdEnv, args []string) (*deadLetters, func(), error) {
	fs := c.flagSet(e)
	cfg, err := dlqParse(c, e, fs, args)
	if err != nil {
		return nil, nil, err
	}
	if fs.NArg() > 0 {
		return nil, nil, c.usageError(e, "unexpected argument %q", fs.Arg(0))
	}
	return dlqOpen(ctx, cfg)
}

// dlqSeqs reads dead-letter ids.
func dlqSeqs(args []string) ([]uint64, error) {
	var out []uint64
	for _, a := range args {
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a DLQ id (the SEQ column of bot dlq list)", a)
		}
		out = append(out, n)
	}
	return out, nil
}

func dlqList(ctx context.Context, c *command, e *cmdEnv, args []string) error {
	dlq, closeBus, err := dlqOpenNoArgs(ctx, c, e, args)
	if err != nil {
		return err
	}
	defer closeBus()
	list, err := dlq.List(ctx)
	if err != nil {
		return err
	}
	events, err := dlq.events.List(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tFAILED\tRULE\tACTION\tATTEMPTS\tREASON\tERROR")
	for _, d := range list {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\n", d.Seq, d.Failed.Format(time.RFC3339), d.Job.Rule,
			d.Job.Action, d.Count(), d.Reason, truncate(d.Error, 80))
	}
	_ = tw.Flush()
	fmt.Fprintf(e.stdout, "%d dead letter(s)\n", len(list))
	if len(events) > 0 {
		fmt.Fprintln(e.stdout)
		tw = tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SEQ\tPARKED\tEVENT\tRULE\tREASON\tERROR")
		for _, p := range events {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", p.Seq, p.Parked.Format(time.RFC3339), p.EventID,
				orDash(p.Rule), p.Reason, truncate(oneLine(p.Error), 80))
		}
		_ = tw.Flush()
	}
	fmt.Fprintf(e.stdout, "%d parked event(s)\n", len(events))
	return nil
}

func dlqShow(ctx context.Context, c *command, e *cmdEnv, args []string) error {
	fs := c.flagSet(e)
	cfg, err := dlqParse(c, e, fs, args)
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return c.usageError(e, "want one SEQ")
	}
	ids, err := dlqSeqs(fs.Args())
	if err != nil {
		return err
	}
	dlq, closeBus, err := dlqOpen(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeBus()
	isEvent, err := dlq.parked(ctx, ids[0])
	if err != nil {
		return err
	}
	if isEvent {
		p, err := dlq.events.Get(ctx, ids[0])
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, indentJSON(p, ""))
		return nil
	}
	d, err := dlq.Get(ctx, ids[0])
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, indentJSON(d.Redacted(), ""))
	return nil
}

func dlqRedrive(ctx context.Context, c *command, e *cmdEnv, args []string) error {
	fs := c.flagSet(e)
	all := fs.Bool("all", false, "redrive every dead letter and parked event")
	cfg, err := dlqParse(c, e, fs, args)
	if err != nil {
		return err
	}
	ids, err := dlqSeqs(fs.Args())
	if err != nil {
		return err
	}
	if len(ids) == 0 && !*all {
		return c.usageError(e, "want SEQ... or --all")
	}
	dlq, closeBus, err := dlqOpen(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeBus()
	if *all {
		list, err := dlq.List(ctx)
		if err != nil {
			return err
		}
		for _, d := range list {
			ids = append(ids, d.Seq)
		}
		events, err := dlq.events.List(ctx)
		if err != nil {
			return err
		}
		for _, p := range events {
			ids = append(ids, p.Seq)
		}
	}
	for _, id := range ids {
		isEvent, err := dlq.parked(ctx, id)
		if err != nil {
			return err
		}
		if isEvent {
			p, err := dlq.events.Redrive(ctx, id)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "redriven %d: event %s (the rules run on it again)\n", id, p.EventID)
			continue
		}
		job, err := dlq.Redrive(ctx, id, time.Now())
		if errors.Is(err, actions.ErrDoneSince) && job != nil {
			fmt.Fprintf(e.stdout, "removed %d: %s (%s) succeeded, or was cancelled, since it died; not run again\n", id, job.ID, job.Action)
			continue
		}
		if errors.Is(err, actions.ErrUndecodable) && *all {
			fmt.Fprintf(e.stdout, "skipped %d: the job could not be decoded; nothing to run (bot dlq show %d)\n", id, id)
			continue
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "redriven %d: %s (%s)\n", id, job.ID, job.Action)
	}
	return nil
}

func dlqPurge(ctx context.Context, c *command, e *cmdEnv, args []string) error {
	dlq, closeBus, err := dlqOpenNoArgs(ctx, c, e, args)
	if err != nil {
		return err
	}
	defer closeBus()
	n, err := dlq.Purge(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "purged %d dead letter(s) and parked event(s)\n", n)
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine joins the lines of a multi-line error (expr errors point at the
// failing column on a second line) for a table cell.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

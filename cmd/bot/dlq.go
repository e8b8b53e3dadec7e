package main

import (
	"context"
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

func dlqCmd(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, "usage: bot dlq list | show SEQ | redrive SEQ... | redrive --all | purge\n")
		return exitError{"no dlq command"}
	}
	sub := args[0]
	fs := pflag.NewFlagSet("bot dlq "+sub, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	configFlags(fs)
	all := fs.Bool("all", false, "redrive every dead letter")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, err := loadConfig(fs, environ)
	if err != nil {
		return err
	}
	b, err := connectBus(ctx, cfg)
	if err != nil {
		return err
	}
	defer b.Close()
	dlq := &actions.DLQ{JS: b.JS}
	parking := &rules.Parking{JS: b.JS}
	seqs := func() ([]uint64, error) {
		var out []uint64
		for _, a := range fs.Args() {
			n, err := strconv.ParseUint(a, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%q is not a DLQ id (the SEQ column of bot dlq list)", a)
			}
			out = append(out, n)
		}
		return out, nil
	}
	// parked tells a parked event from a dead job by where it is stored.
	parked := func(seq uint64) (bool, error) {
		s, err := b.JS.Stream(ctx, bus.DeadStream)
		if err != nil {
			return false, fmt.Errorf("open DLQ: %w", err)
		}
		raw, err := s.GetMsg(ctx, seq)
		if err != nil {
			return false, fmt.Errorf("DLQ entry %d: %w", seq, err)
		}
		return rules.IsParked(raw.Subject), nil
	}
	switch sub {
	case "list":
		list, err := dlq.List(ctx)
		if err != nil {
			return err
		}
		events, err := parking.List(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SEQ\tFAILED\tRULE\tACTION\tATTEMPTS\tREASON\tERROR")
		for _, d := range list {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\n", d.Seq, d.Failed.Format(time.RFC3339), d.Job.Rule,
				d.Job.Action, len(d.Attempts), d.Reason, truncate(d.Error, 80))
		}
		_ = tw.Flush()
		fmt.Fprintf(stdout, "%d dead letter(s)\n", len(list))
		if len(events) > 0 {
			fmt.Fprintln(stdout)
			tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tPARKED\tEVENT\tRULE\tREASON\tERROR")
			for _, p := range events {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", p.Seq, p.Parked.Format(time.RFC3339), p.EventID,
					orDash(p.Rule), p.Reason, truncate(oneLine(p.Error), 80))
			}
			_ = tw.Flush()
		}
		fmt.Fprintf(stdout, "%d parked event(s)\n", len(events))
		return nil
	case "show":
		ids, err := seqs()
		if err != nil {
			return err
		}
		if len(ids) != 1 {
			return fmt.Errorf("usage: bot dlq show SEQ")
		}
		isEvent, err := parked(ids[0])
		if err != nil {
			return err
		}
		if isEvent {
			p, err := parking.Get(ctx, ids[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, indentJSON(p, ""))
			return nil
		}
		d, err := dlq.Get(ctx, ids[0])
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, indentJSON(d, ""))
		return nil
	case "redrive":
		ids, err := seqs()
		if err != nil {
			return err
		}
		if *all {
			list, err := dlq.List(ctx)
			if err != nil {
				return err
			}
			for _, d := range list {
				ids = append(ids, d.Seq)
			}
			events, err := parking.List(ctx)
			if err != nil {
				return err
			}
			for _, p := range events {
				ids = append(ids, p.Seq)
			}
		}
		if len(ids) == 0 {
			return fmt.Errorf("usage: bot dlq redrive SEQ... | --all")
		}
		for _, id := range ids {
			isEvent, err := parked(id)
			if err != nil {
				return err
			}
			if isEvent {
				p, err := parking.Redrive(ctx, id)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "redriven %d: event %s (the rules run on it again)\n", id, p.EventID)
				continue
			}
			job, err := dlq.Redrive(ctx, id, time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "redriven %d: %s (%s)\n", id, job.ID, job.Action)
		}
		return nil
	case "purge":
		n, err := dlq.Purge(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "purged %d dead letter(s) and parked event(s)\n", n)
		return nil
	default:
		return fmt.Errorf("bot dlq: unknown command %q; want list, show, redrive or purge", sub)
	}
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

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/comm100bot/bot/internal/event"
	"github.com/comm100bot/bot/internal/ingest"

	"github.com/comm100bot/bot/internal/actions"
	"github.com/comm100bot/bot/internal/rules"
)

func rulesCmd(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitError{"no rules command"}
	}
	switch args[0] {
	case "check":
		return rulesCheck(args[1:], stdout, stderr)
	case "test":
		return rulesTest(args[1:], stdout, stderr)
	case "eval":
		return rulesEval(args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "bot rules: unknown command %q\n\n%s", args[0], usage)
		return exitError{"unknown command"}
	}
}

func rulesDir(args []string) string {
	if len(args) > 0 {
		return args[0]
	}
	return "./rules"
}

// loadRules loads a rules directory and prints every error to stderr.
func loadRules(dir string, stderr io.Writer) (*rules.Engine, error) {
	eng, err := rules.LoadDir(dir, actions.NewCatalog(), eventShapes())
	if err != nil {
		var list rules.ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				fmt.Fprintln(stderr, e)
			}
			fmt.Fprintf(stderr, "%d error(s)\n", len(list))
			return nil, exitError{"rules have errors"}
		}
		return nil, err
	}
	return eng, nil
}

func rulesCheck(args []string, stdout, stderr io.Writer) error {
	dir := rulesDir(args)
	eng, err := loadRules(dir, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d rules in %d files, all valid\n", dir, len(eng.Rules()), eng.Files())
	return nil
}

// eventShapes are the shapes of the events rules are type-checked against:
// the Comm100 normalizer's, under the name of the default comm100 source.
func eventShapes() *rules.Shapes {
	var s rules.Shapes
	s.Add("comm100", ingest.Comm100Shapes())
	return &s
}

// decodeWebhook decodes raw webhook bodies for rule tests and eval.
func decodeWebhook(source string, body []byte, received time.Time) (*event.Event, error) {
	return ingest.DecodeComm100(source, body, received)
}

func rulesTest(args []string, stdout, stderr io.Writer) error {
	eng, err := loadRules(rulesDir(args), stderr)
	if err != nil {
		return err
	}
	passed, failed := 0, 0
	for _, r := range eng.RunTests(decodeWebhook) {
		if r.Passed() {
			passed++
			fmt.Fprintf(stdout, "PASS %s: %s\n", r.Rule.Name, r.Test.Name)
			continue
		}
		failed++
		fmt.Fprintf(stdout, "FAIL %s: %s (%s:%d)\n", r.Rule.Name, r.Test.Name, r.Rule.File, r.Test.Line)
		for _, f := range r.Failures {
			fmt.Fprintf(stdout, "    %s\n", f)
		}
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return exitError{"rule tests failed"}
	}
	return nil
}

func rulesEval(args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("bot rules eval", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	eventFile := fs.String("event", "", "event file: a webhook body (with --source) or a canonical event")
	source := fs.String("source", "", "source the body was posted to, e.g. comm100; empty if the file is a canonical event")
	dir := fs.String("rules", "./rules", "rules directory")
	at := fs.String("now", "", "evaluate as of this RFC 3339 time (default: now)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *eventFile == "" {
		return fmt.Errorf("--event FILE is required")
	}
	now := time.Now()
	if *at != "" {
		t, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			return fmt.Errorf("--now %q: want an RFC 3339 time", *at)
		}
		now = t
	}
	body, err := os.ReadFile(*eventFile)
	if err != nil {
		return err
	}
	var ev *event.Event
	if *source != "" {
		if ev, err = decodeWebhook(*source, body, now); err != nil {
			return fmt.Errorf("%s as a %s webhook: %w", *eventFile, *source, err)
		}
	} else {
		ev = &event.Event{}
		if err := json.Unmarshal(body, ev); err != nil || ev.Type == "" || ev.Source == "" {
			return fmt.Errorf("%s is not a canonical event (id, source, type, data); for a webhook body pass --source", *eventFile)
		}
	}
	eng, err := loadRules(*dir, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "event %s (%s), nothing is sent\n\n", ev.ID, ev.Topic())
	matched := 0
	for _, o := range eng.Explain(ev, now) {
		switch {
		case o.Err != nil:
			fmt.Fprintf(stdout, "ERROR    %s: %v\n", o.Rule.Name, o.Err)
		case o.Matched:
			matched++
			fmt.Fprintf(stdout, "MATCH    %s (%s:%d)\n", o.Rule.Name, o.Rule.File, o.Rule.Line)
			for _, j := range o.Jobs {
				p := indentJSON(j.Params, "           ")
				when := ""
				if !j.RunAt.IsZero() {
					when = " at " + j.RunAt.Format(time.RFC3339)
				}
				fmt.Fprintf(stdout, "  -> %s%s %s\n", j.Action, when, p)
			}
		default:
			fmt.Fprintf(stdout, "no match %s: %s\n", o.Rule.Name, o.Reason)
		}
	}
	fmt.Fprintf(stdout, "\n%d of %d rules matched\n", matched, len(eng.Rules()))
	return nil
}

// indentJSON renders v as indented JSON without HTML escaping.
func indentJSON(v any, prefix string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent(prefix, "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimRight(b.String(), "\n")
}

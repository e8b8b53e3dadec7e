package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/comm100bot/bot/internal/event"
	"github.com/comm100bot/bot/internal/ingest"

	"github.com/comm100bot/bot/internal/actions"
	"github.com/comm100bot/bot/internal/rules"
)

func rulesCheckCommand() *command {
	return &command{
		name:    "check",
		args:    "[DIR]",
		summary: "load and compile every rule file",
		long: `Loads and compiles every rule file in DIR (default ./rules; *.yaml and *.yml,
sub-folders included, testdata and dot-folders skipped) and prints
"file:line:col: message" for every error. Exits 1 on any error, and when DIR
does not exist or holds no rule file.`,
		run: rulesCheck,
	}
}

func rulesTestCommand() *command {
	return &command{
		name:    "test",
		args:    "[DIR]",
		summary: "run the inline tests of the rule files",
		long: `Runs the inline tests (tests:) of every rule file in DIR (default ./rules),
prints each result and "N passed, N failed". Exits 1 on a failure, on a rule
error, and when DIR does not exist or holds no rule file.`,
		run: rulesTest,
	}
}

func rulesEvalCommand() *command {
	return &command{
		name:    "eval",
		args:    "--event FILE [flags]",
		summary: "show what the rules make of an event; sends nothing",
		long: `Shows which rules match the event in FILE, why the others do not, and the
actions the matching rules would run, rendered. Sends nothing. With --source,
FILE is a webhook body posted to that Comm100 source; without it, FILE is a
canonical event (id, source, type, time, data).`,
		run: rulesEval,
	}
}

// rulesDir is the directory argument of check and test.
func rulesDir(c *command, e *cmdEnv, fs *pflag.FlagSet) (string, error) {
	switch fs.NArg() {
	case 0:
		return "./rules", nil
	case 1:
		return fs.Arg(0), nil
	default:
		return "", c.usageError(e, "want at most one directory, got %d arguments", fs.NArg())
	}
}

// loadRules loads a rules directory and prints every error to stderr. A
// directory that holds no rule file is an error: a wrong path must not pass.
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
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("rules: %s does not exist", dir)
		}
		return nil, fmt.Errorf("rules in %s: %w", dir, err)
	}
	if eng.Files() == 0 {
		return nil, fmt.Errorf("rules: no rule files (*.yaml, *.yml) in %s", dir)
	}
	return eng, nil
}

func rulesCheck(_ context.Context, c *command, e *cmdEnv, args []string) error {
	fs := c.flagSet(e)
	if err := c.parse(fs, e, args); err != nil {
		return err
	}
	dir, err := rulesDir(c, e, fs)
	if err != nil {
		return err
	}
	eng, err := loadRules(dir, e.stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: %d rules in %d files, all valid\n", dir, len(eng.Rules()), eng.Files())
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

func rulesTest(_ context.Context, c *command, e *cmdEnv, args []string) error {
	fs := c.flagSet(e)
	if err := c.parse(fs, e, args); err != nil {
		return err
	}
	dir, err := rulesDir(c, e, fs)
	if err != nil {
		return err
	}
	eng, err := loadRules(dir, e.stderr)
	if err != nil {
		return err
	}
	stdout := e.stdout
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

func rulesEval(_ context.Context, c *command, e *cmdEnv, args []string) error {
	stdout, stderr := e.stdout, e.stderr
	fs := c.flagSet(e)
	eventFile := fs.String("event", "", "event file: a webhook body (with --source) or a canonical event")
	source := fs.String("source", "", "source the body was posted to, e.g. comm100; empty if the file is a canonical event")
	dir := fs.String("rules", "./rules", "rules directory")
	at := fs.String("now", "", "evaluate as of this RFC 3339 time (default: the current time)")
	if err := c.parse(fs, e, args); err != nil {
		return err
	}
	if *eventFile == "" {
		return c.usageError(e, "--event FILE is required")
	}
	if fs.NArg() > 0 {
		return c.usageError(e, "unexpected argument %q", fs.Arg(0))
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
				if err := o.Rule.CheckJob(j); err != nil {
					fmt.Fprintf(stdout, "     REFUSED: %v; the job would go to the DLQ\n", err)
				}
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

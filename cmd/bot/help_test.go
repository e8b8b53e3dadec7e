package main

import (
	"bytes"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/comm100bot/bot/internal/secret"
)

// TestEveryCommandHasHelp walks the command tree: every command and
// subcommand answers --help (and the "help" word of groups) on stdout with
// exit 0, without side effects, and describes every flag.
func TestEveryCommandHasHelp(t *testing.T) {
	t.Parallel()
	var walk func(c *command, args []string)
	count := 0
	walk = func(c *command, args []string) {
		count++
		for _, help := range [][]string{{"--help"}, {"-h"}} {
			t.Run(c.path+" "+help[0], func(t *testing.T) {
				var stdout, stderr bytes.Buffer
				// No NATS, no config file, no simulator port: help must not need them.
				environ := []string{"BOT_NATS__URL=nats://127.0.0.1:1"}
				if err := run(t.Context(), append(slices.Clone(args), help...), environ, &stdout, &stderr); err != nil {
					t.Fatalf("exit with %v\nstderr: %s", err, stderr.String())
				}
				out := stdout.String()
				if !strings.HasPrefix(out, "Usage: "+c.path) {
					t.Errorf("help does not start with the usage of %s:\n%s", c.path, out)
				}
				if stderr.Len() > 0 {
					t.Errorf("help wrote to stderr: %s", stderr.String())
				}
				for _, s := range c.subs {
					if !strings.Contains(out, "\n  "+s.name+" ") || !strings.Contains(out, s.summary) {
						t.Errorf("help of %s does not list %s with its summary:\n%s", c.path, s.name, out)
					}
				}
				if c.run != nil {
					checkFlagLines(t, out)
				}
			})
		}
		for _, s := range c.subs {
			walk(s, append(slices.Clone(args), s.name))
		}
	}
	walk(commandTree(), nil)
	if count < 15 {
		t.Errorf("walked %d commands, want every one of the tree", count)
	}
}

// checkFlagLines checks that every flag line of a help text has a description.
func checkFlagLines(t *testing.T, help string) {
	t.Helper()
	_, flags, ok := strings.Cut(help, "\nFlags:\n")
	if !ok {
		t.Fatalf("no Flags section:\n%s", help)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimRight(flags, "\n"), "\n") {
		trimmed := strings.TrimSpace(line)
		if !strings.HasPrefix(trimmed, "-") {
			continue // a wrapped description
		}
		n++
		if parts := regexp.MustCompile(`\s{2,}`).Split(trimmed, 2); len(parts) < 2 || strings.TrimSpace(parts[1]) == "" {
			t.Errorf("flag without a description: %q", line)
		}
	}
	if n == 0 {
		t.Errorf("no flags listed, not even --help:\n%s", help)
	}
}

func TestHelpOfSomeCommands(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args       []string
		want, not  []string
		wantStdout bool
	}{
		{args: []string{"serve", "--help"}, want: []string{
			"--http.addr string", `(default ":8080")`, "--http.admin_addr string", `(default "127.0.0.1:8081")`,
			"--http.read_header_timeout duration", "(default 5s)", "--rules.watch", "(default true)",
			"--comm100.rate_limit.calls int", "(default 300)", "--config string",
		}, not: []string{"--comm100.api_key", "--comm100.password", "--http.admin_token", "--sources."}},
		{args: []string{"rules", "--help"}, want: []string{"Usage: bot rules COMMAND", "check", "test", "eval"}},
		{args: []string{"rules", "check", "--help"}, want: []string{"Usage: bot rules check [DIR]", "no rule file"}},
		{args: []string{"dlq", "--help"}, want: []string{"list", "show", "redrive", "purge"}},
		{args: []string{"dlq", "list", "--help"}, want: []string{"--nats.url", "--config"}, not: []string{"--all", "--http.addr"}},
		{args: []string{"dlq", "redrive", "--help"}, want: []string{"--all", "--nats.url"}},
		{args: []string{"help", "rules", "eval"}, want: []string{"Usage: bot rules eval", "--event string"}},
		{args: []string{"help"}, want: []string{"serve", "sim", "rules", "dlq", "send", "comm100"}},
		{args: []string{"comm100", "webhooks", "sync", "-h"}, want: []string{"--public-url", "--dry-run"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if err := run(t.Context(), tt.args, nil, &stdout, &stderr); err != nil {
				t.Fatalf("exit with %v; stderr %s", err, stderr.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("help lacks %q:\n%s", w, stdout.String())
				}
			}
			for _, n := range tt.not {
				if strings.Contains(stdout.String(), n) {
					t.Errorf("help shows %q:\n%s", n, stdout.String())
				}
			}
		})
	}
}

func TestBadCommandLinesExit1WithAHint(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{}, "Usage: bot COMMAND"},
		{[]string{"nope"}, `bot: unknown command "nope"`},
		{[]string{"rules"}, "Usage: bot rules COMMAND"},
		{[]string{"rules", "nope"}, `bot rules: unknown command "nope"`},
		{[]string{"serve", "--nope"}, "bot serve: unknown flag: --nope\nRun \"bot serve --help\""},
		{[]string{"serve", "extra"}, `bot serve: unexpected argument "extra"`},
		{[]string{"rules", "check", "a", "b"}, "want at most one directory"},
		{[]string{"dlq", "show"}, "bot dlq show: want one SEQ"},
		{[]string{"dlq", "redrive"}, "want SEQ... or --all"},
		{[]string{"send", "comm100"}, "bot send: want SOURCE and FILE"},
		{[]string{"rules", "eval"}, "--event FILE is required"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), tt.args, []string{"BOT_NATS__URL=nats://127.0.0.1:1"}, &stdout, &stderr)
			if err == nil {
				t.Fatal("exit 0, want 1")
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr %q, want it to contain %q", stderr.String(), tt.want)
			}
		})
	}
}

// TestConfigFlagsAreDocumented keeps configDocs in step with Config: every
// flag has a description, no description is of a key that is gone, and no
// secret or source key is a flag.
func TestConfigFlagsAreDocumented(t *testing.T) {
	t.Parallel()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	configFlags(fs)
	flags := map[string]bool{}
	fs.VisitAll(func(f *pflag.Flag) {
		flags[f.Name] = true
		if f.Usage == "" {
			t.Errorf("--%s has no description", f.Name)
		}
	})
	for key := range configDocs {
		if !flags[key] {
			t.Errorf("configDocs describes %q, which is not a flag", key)
		}
	}
	for _, k := range configKeys(reflect.TypeFor[Config](), "") {
		secretKey := k.typ == reflect.TypeFor[secret.String]()
		if flags[k.path] && (secretKey || strings.HasPrefix(k.path, "sources.")) {
			t.Errorf("%s is a flag", k.path)
		}
		if !flags[k.path] && !secretKey && !k.isMap && !strings.HasPrefix(k.path, "sources.") {
			t.Errorf("%s is not a flag", k.path)
		}
	}
}

// TestREADMEDocumentsEveryConfigKey keeps the README's configuration table
// in step with Config.
func TestREADMEDocumentsEveryConfigKey(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	start := strings.Index(readme, "\n## Configuration\n")
	end := strings.Index(readme[start+1:], "\n## ")
	if start < 0 || end < 0 {
		t.Fatal("README has no Configuration section")
	}
	table := readme[start : start+1+end]
	for _, k := range configKeys(reflect.TypeFor[Config](), "") {
		if k.isMap {
			continue
		}
		key := k.path
		if rest, ok := strings.CutPrefix(key, "sources.*."); ok {
			// Rows name sources.<name>.x, or list .x after the first key of a group.
			if !strings.Contains(table, "`sources.<name>."+rest+"`") && !strings.Contains(table, "`."+rest+"`") &&
				!strings.Contains(table, "`."+lastSegment(rest)+"`") {
				t.Errorf("README configuration table lacks sources.<name>.%s", rest)
			}
			continue
		}
		if !strings.Contains(table, "`"+key+"`") {
			t.Errorf("README configuration table lacks %s", key)
		}
	}
}

func lastSegment(key string) string {
	if i := strings.LastIndex(key, "."); i >= 0 {
		return key[i+1:]
	}
	return key
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"
)

// A command is one node of bot's command tree: a group of subcommands, or a
// leaf that runs. run dispatches through the tree and --help prints from it,
// and a test walks it, so that no command goes without help.
type command struct {
	name    string
	args    string // what follows the command's path in its usage line, e.g. "[flags] [DIR]"
	summary string // one line, shown in the parent's list of commands
	long    string // printed by --help after the usage line; default the summary
	// run runs a leaf. It builds its flags with c.flagSet and parses them with
	// c.parse, which answers --help.
	run  func(ctx context.Context, c *command, e *cmdEnv, args []string) error
	subs []*command

	path string // "bot rules check", set by link
}

// cmdEnv is what a command runs with: the environment and the output streams.
type cmdEnv struct {
	environ        []string
	stdout, stderr io.Writer
}

// errHelpShown is returned once a command printed its help: run exits 0.
var errHelpShown = errors.New("help shown")

// commandTree is every command of bot.
func commandTree() *command {
	root := &command{
		name:    "bot",
		summary: "Comm100 automation from webhooks, rules and a rate-limited worker pool.",
		subs: []*command{
			serveCommand(),
			simCommand(),
			{
				name:    "rules",
				summary: "check, test and try the rule files",
				subs:    []*command{rulesCheckCommand(), rulesTestCommand(), rulesEvalCommand()},
			},
			dlqCommand(),
			eventsCommand(),
			sendCommand(),
			benchCommand(),
			{
				name:    "comm100",
				summary: "manage the Comm100 side of the bot",
				subs: []*command{{
					name:    "webhooks",
					summary: "manage the bot's Comm100 webhook subscriptions",
					subs:    []*command{webhooksSyncCommand()},
				}},
			},
		},
	}
	link(root, "")
	return root
}

func link(c *command, parent string) {
	c.path = strings.TrimSpace(parent + " " + c.name)
	for _, s := range c.subs {
		link(s, c.path)
	}
}

func (c *command) sub(name string) *command {
	for _, s := range c.subs {
		if s.name == name {
			return s
		}
	}
	return nil
}

// dispatch runs c with args: a leaf runs; a group finds its subcommand, or
// prints its help.
func (c *command) dispatch(ctx context.Context, e *cmdEnv, args []string) error {
	if c.run != nil {
		return c.run(ctx, c, e, args)
	}
	if len(args) == 0 {
		c.printGroupHelp(e.stderr)
		return exitError{"no command"}
	}
	switch args[0] {
	case "-h", "--help":
		c.printGroupHelp(e.stdout)
		return errHelpShown
	case "help":
		// "bot help rules check" is "bot rules check --help".
		target := c
		for _, name := range args[1:] {
			s := target.sub(name)
			if s == nil {
				fmt.Fprintf(e.stderr, "%s: unknown command %q\n\n", target.path, name)
				target.printGroupHelp(e.stderr)
				return exitError{"unknown command"}
			}
			target = s
		}
		if target.run != nil {
			return target.run(ctx, target, e, []string{"--help"})
		}
		target.printGroupHelp(e.stdout)
		return errHelpShown
	}
	s := c.sub(args[0])
	if s == nil {
		fmt.Fprintf(e.stderr, "%s: unknown command %q\n\n", c.path, args[0])
		c.printGroupHelp(e.stderr)
		return exitError{"unknown command"}
	}
	return s.dispatch(ctx, e, args[1:])
}

func (c *command) printGroupHelp(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s COMMAND\n\n%s\n\nCommands:\n", c.path, sentence(c.longText()))
	width := 0
	for _, s := range c.subs {
		width = max(width, len(s.name))
	}
	for _, s := range c.subs {
		fmt.Fprintf(w, "  %-*s  %s\n", width, s.name, s.summary)
	}
	fmt.Fprintf(w, "\nRun \"%s COMMAND --help\" for the help of a command.\n", c.path)
}

func (c *command) longText() string {
	if c.long != "" {
		return c.long
	}
	return c.summary
}

// sentence capitalises s and ends it with a full stop.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	s = strings.ToUpper(s[:1]) + s[1:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

// flagSet returns the flag set of leaf c, with -h/--help defined.
func (c *command) flagSet(e *cmdEnv) *pflag.FlagSet {
	fs := pflag.NewFlagSet(c.path, pflag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {}
	fs.BoolP("help", "h", false, "show this help")
	return fs
}

// parse parses a leaf's flags. On --help it prints the help to stdout and
// returns errHelpShown; on a bad flag it says so on stderr and returns an
// exitError.
func (c *command) parse(fs *pflag.FlagSet, e *cmdEnv, args []string) error {
	err := fs.Parse(args)
	if err != nil && !errors.Is(err, pflag.ErrHelp) {
		fmt.Fprintf(e.stderr, "%s: %v\nRun \"%s --help\" for the flags.\n", c.path, err, c.path)
		return exitError{err.Error()}
	}
	if help, _ := fs.GetBool("help"); help || err != nil {
		c.printHelp(e.stdout, fs)
		return errHelpShown
	}
	return nil
}

// usageError says what was wrong with the arguments of c.
func (c *command) usageError(e *cmdEnv, format string, a ...any) error {
	msg := fmt.Sprintf(format, a...)
	fmt.Fprintf(e.stderr, "%s: %s\nUsage: %s %s\nRun \"%s --help\" for more.\n", c.path, msg, c.path, c.args, c.path)
	return exitError{msg}
}

func (c *command) printHelp(w io.Writer, fs *pflag.FlagSet) {
	fmt.Fprintf(w, "Usage: %s %s\n\n%s\n", c.path, c.args, strings.TrimRight(sentence(c.longText()), "\n"))
	fmt.Fprintf(w, "\nFlags:\n%s", fs.FlagUsages())
}

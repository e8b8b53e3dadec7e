// Command bot automates customer-support work on Comm100: it takes webhooks,
// makes them durable on NATS JetStream, matches them against rules written in
// YAML, and carries out the resulting actions against the Comm100 API through
// one shared, rate-limited worker pool.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr); err != nil {
		var ex exitError
		if !errors.As(err, &ex) {
			fmt.Fprintln(os.Stderr, "bot:", err)
		}
		os.Exit(1)
	}
}

// exitError is an error already reported to the user: exit 1 and print nothing more.
type exitError struct{ msg string }

func (e exitError) Error() string { return e.msg }

const usage = `bot: Comm100 automation from webhooks, rules and a rate-limited worker pool.

Usage:
  bot serve [flags]                 run the bot: webhooks, rules, workers
  bot sim [flags]                   run the Comm100 API simulator
  bot rules check [DIR]             load and compile the rule files
  bot rules test [DIR]              run the rules' inline tests
  bot rules eval --event FILE       show what the rules make of an event
  bot dlq list|show|redrive|purge   inspect and replay jobs that failed for good
  bot bench [flags]                 load-test a bot (or one started in-process) and report its figures
  bot send SOURCE FILE              post a webhook body to a running bot, signed as its source would
  bot comm100 webhooks sync --public-url URL
                                    register the bot for every Comm100 live-chat event

Run "bot COMMAND --help" for the flags of a command.
`

// run is the whole program, with its environment passed in so that tests can
// run it in-process.
func run(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitError{"no command"}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serveCmd(ctx, rest, environ, stdout, stderr)
	case "sim":
		return simCmd(ctx, rest, stdout, stderr)
	case "rules":
		return rulesCmd(ctx, rest, environ, stdout, stderr)
	case "dlq":
		return dlqCmd(ctx, rest, environ, stdout, stderr)
	case "bench":
		return benchCmd(ctx, rest, stdout, stderr)
	case "send":
		return sendCmd(ctx, rest, environ, stdout, stderr)
	case "comm100":
		return comm100Cmd(ctx, rest, environ, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "bot: unknown command %q\n\n%s", cmd, usage)
		return exitError{"unknown command"}
	}
}

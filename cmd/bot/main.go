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

// run is the whole program, with its environment passed in so that tests can
// run it in-process.
func run(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	err := commandTree().dispatch(ctx, &cmdEnv{environ: environ, stdout: stdout, stderr: stderr}, args)
	if errors.Is(err, errHelpShown) {
		return nil
	}
	return err
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/comm100bot/bot/internal/ingest"
)

func sendCommand() *command {
	return &command{
		name:    "send",
		args:    "[flags] SOURCE FILE",
		summary: "post a webhook body to a running bot, as its source's sender would",
		long: `Posts FILE (or - for standard input) to a running bot as a webhook of the
configured source SOURCE would arrive: to /hooks/SOURCE, with the source's URL
token, signed with its secret or carrying its credential, read from the same
configuration as the bot (--config, BOT_ variables). Prints the answer. Exits 1
unless the bot answered 2xx.`,
		run: sendCmd,
	}
}

func sendCmd(ctx context.Context, c *command, e *cmdEnv, args []string) error {
	stdout := e.stdout
	fs := c.flagSet(e)
	base := fs.String("url", "http://localhost:8080", "address of the running bot's webhook listener (http.addr)")
	config := fs.String("config", "", "config file holding the source (default bot.yaml if present; BOT_ variables apply)")
	headers := fs.StringArray("header", nil, `extra request header "Name: value", repeatable (e.g. "X-GitHub-Event: push")`)
	timeout := fs.Duration("timeout", 10*time.Second, "bound on the whole request")
	if err := c.parse(fs, e, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return c.usageError(e, "want SOURCE and FILE")
	}
	name, file := fs.Arg(0), fs.Arg(1)

	cfs := pflag.NewFlagSet("config", pflag.ContinueOnError)
	cfs.String("config", *config, "")
	cfg, err := loadConfig(cfs, e.environ)
	if err != nil {
		return err
	}
	src, ok := cfg.Sources[name]
	if !ok {
		return fmt.Errorf("source %q is not configured; configured sources: %s", name,
			strings.Join(slices.Sorted(maps.Keys(cfg.Sources)), ", "))
	}
	var body []byte
	if file == "-" {
		body, err = io.ReadAll(os.Stdin)
	} else {
		body, err = os.ReadFile(file)
	}
	if err != nil {
		return fmt.Errorf("read the body: %w", err)
	}

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := ingest.NewRequest(ctx, *base, name, src, body, time.Now())
	if err != nil {
		return err
	}
	for _, h := range *headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(k) == "" {
			return fmt.Errorf("--header %q: want \"Name: value\"", h)
		}
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		// The URL may hold the source's token: name only the bot's base URL.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("post to %s: %w", *base, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read the answer: %w", err)
	}
	fmt.Fprintf(stdout, "%s\n%s", resp.Status, answer)
	if len(answer) > 0 && answer[len(answer)-1] != '\n' {
		fmt.Fprintln(stdout)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return exitError{resp.Status}
	}
	return nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/spf13/pflag"

	"github.com/comm100bot/bot/internal/comm100/comm100test"
)

func simCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("bot sim", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8089", "address to listen on")
	siteID := fs.String("site-id", comm100test.DefaultSiteID, "site id the simulator accepts")
	email := fs.String("email", comm100test.DefaultEmail, "agent email the simulator accepts")
	apiKey := fs.String("api-key", comm100test.DefaultAPIKey, "API key the simulator accepts")
	if err := fs.Parse(args); err != nil {
		return err
	}
	sim := comm100test.New(comm100test.Config{SiteID: *siteID, Email: *email, APIKey: *apiKey})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("--addr %s: %w", *addr, err)
	}
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(stdout, `Comm100 simulator listening on %s

Point the bot at it with:
  BOT_COMM100__BASE_URL=%s%s
  BOT_COMM100__SITE_ID=%s
  BOT_COMM100__EMAIL=%s
  BOT_COMM100__API_KEY=%s

Recorded calls: curl %s/_sim/requests
`, base, base, comm100test.APIPrefix, *siteID, *email, *apiKey, base)
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}

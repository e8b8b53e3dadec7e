package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/comm100bot/bot/internal/comm100/comm100test"
)

func simCommand() *command {
	return &command{
		name:    "sim",
		args:    "[flags]",
		summary: "run the Comm100 API simulator",
		long: `Runs a simulator of the Comm100 v4 API on a local port, for trying the bot
without a Comm100 tenant, and prints the settings that point the bot at it.
GET /_sim/requests lists every call it took; GET /_sim/state shows what it
holds; POST /_sim/faults and POST /_sim/seed change its faults and its data.`,
		run: simCmd,
	}
}

func simCmd(ctx context.Context, c *command, e *cmdEnv, args []string) error {
	stdout := e.stdout
	fs := c.flagSet(e)
	addr := fs.String("addr", "127.0.0.1:8089", "address to listen on")
	siteID := fs.String("site-id", comm100test.DefaultSiteID, "site id the simulator accepts")
	email := fs.String("email", comm100test.DefaultEmail, "agent email the simulator accepts")
	apiKey := fs.String("api-key", comm100test.DefaultAPIKey, "API key the simulator accepts")
	password := fs.String("password", comm100test.DefaultPassword, "password the OAuth password grant accepts")
	clientID := fs.String("client-id", comm100test.DefaultClientID, "OAuth client id the password grant accepts")
	tokenTTL := fs.Duration("token-ttl", comm100test.DefaultTokenTTL, "life of an OAuth access token")
	rateLimit := fs.String("rate-limit", fmt.Sprintf("%d/%s", comm100test.DefaultCalls, "5m"), `per-client-IP budget "CALLS/WINDOW" (sliding window), or "off"`)
	failRate := fs.Float64("fail-rate", 0, "share of API calls, 0 to 1, answered 500")
	latency := fs.Duration("latency", 0, "delay added to every answer")
	if err := c.parse(fs, e, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return c.usageError(e, "unexpected argument %q", fs.Arg(0))
	}
	rl, err := parseRateLimit(*rateLimit)
	if err != nil {
		return fmt.Errorf("--rate-limit: %w", err)
	}
	faults := comm100test.Faults{FailRate: *failRate, Latency: *latency}
	if err := faults.Validate(); err != nil {
		return fmt.Errorf("--fail-rate or --latency: %w", err)
	}
	sim := comm100test.New(comm100test.Config{
		SiteID: *siteID, Email: *email, APIKey: *apiKey, Password: *password, ClientID: *clientID,
		TokenTTL: *tokenTTL, RateLimit: rl, Faults: faults,
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("--addr %s: %w", *addr, err)
	}
	base := "http://" + ln.Addr().String()
	limit := "off"
	if r := sim.RateLimit(); r.Calls > 0 {
		limit = fmt.Sprintf("%d calls per %s per client IP", r.Calls, r.Per)
	}
	fmt.Fprintf(stdout, `Comm100 simulator listening on %s
Rate limit: %s; fail rate %g; latency %s

Point the bot at it with an API key:
  BOT_COMM100__BASE_URL=%s%s
  BOT_COMM100__SITE_ID=%s
  BOT_COMM100__EMAIL=%s
  BOT_COMM100__API_KEY=%s
or with OAuth (token URL %s%s), instead of the API key:
  BOT_COMM100__PASSWORD=%s
  BOT_COMM100__CLIENT_ID=%s

Control:
  curl %s/_sim/requests     every call
  curl %s/_sim/state        tickets, contacts, chats, ...
  curl -d '{"fail_rate":0.2,"latency":"300ms","outage_for":"1m"}' %s/_sim/faults
  curl -d '{"chats":[{"guid":"8f14e45f-ceea-4e7a-9b21-3d5c6a7b8c90"}],"ticketFields":[{"name":"Order Number"}]}' %s/_sim/seed
`, base, limit, *failRate, *latency,
		base, comm100test.APIPrefix, *siteID, *email, *apiKey, base, comm100test.TokenPath, *password, *clientID,
		base, base, base, base)
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

// parseRateLimit reads "60/10s" (a bare unit means one of it: "300/m"), or
// "off".
func parseRateLimit(s string) (comm100test.IPRateLimit, error) {
	if s == "off" {
		return comm100test.IPRateLimit{Calls: -1}, nil
	}
	calls, per, ok := strings.Cut(s, "/")
	n, err := strconv.Atoi(calls)
	if !ok || err != nil || n < 1 {
		return comm100test.IPRateLimit{}, fmt.Errorf("%q: want CALLS/WINDOW such as 300/5m, or off", s)
	}
	if per != "" && (per[0] < '0' || per[0] > '9') {
		per = "1" + per
	}
	d, err := time.ParseDuration(per)
	if err != nil || d <= 0 {
		return comm100test.IPRateLimit{}, fmt.Errorf("%q: want CALLS/WINDOW such as 300/5m, or off", s)
	}
	return comm100test.IPRateLimit{Calls: n, Per: d}, nil
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/comm100bot/bot/internal/actions"
	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/comm100"
	"github.com/comm100bot/bot/internal/ingest"
	"github.com/comm100bot/bot/internal/rules"
)

func serveCommand() *command {
	return &command{
		name:    "serve",
		args:    "[flags]",
		summary: "run the bot: webhooks, rules, workers",
		long: `Runs the whole bot: the webhook listener (http.addr, POST /hooks/SOURCE),
the admin listener (http.admin_addr: GET /healthz, GET /readyz, GET /metrics,
POST /-/reload), the rules and the worker pool. Without nats.url it embeds a
NATS server; without Comm100 credentials actions run dry.

The configuration is read from the config file (--config, default bot.yaml if
present), then BOT_ environment variables (BOT_HTTP__ADDR sets http.addr),
then these flags. Secrets (comm100.api_key, comm100.password,
http.admin_token) and the keys of sources are not flags: set them in the
config file or the environment.`,
		run: serveCmd,
	}
}

func serveCmd(ctx context.Context, c *command, e *cmdEnv, args []string) error {
	fs := c.flagSet(e)
	configFlags(fs)
	if err := c.parse(fs, e, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return c.usageError(e, "unexpected argument %q", fs.Arg(0))
	}
	cfg, err := loadConfig(fs, e.environ)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, e.stderr)
	defer limitMemory(log, "/", memoryTarget)()
	a, err := newApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	return a.run(ctx)
}

// app is the whole running bot: bus, rules, workers and HTTP, wired together.
type app struct {
	cfg     *Config
	log     *slog.Logger
	reg     *prometheus.Registry
	bus     *bus.Bus
	catalog *actions.Catalog
	rules   *rules.Coordinator
	pool    *actions.Pool
	router  *rules.Router
	ingest  *ingest.Handler
	// recent remembers the ids of the events stored within
	// nats.dedup_window; followIDs reads those that every replica stores.
	recent    *ingest.RecentIDs
	followIDs func(context.Context) error
	// The webhook listener answers POST /hooks/... only; the admin
	// listener the health, readiness, metrics and reload endpoints.
	ln, adminLn   net.Listener
	srv, adminSrv *http.Server
}

// newApp builds and connects everything and binds the HTTP listener, so that
// Addr is known before run starts serving.
func newApp(ctx context.Context, cfg *Config, log *slog.Logger) (_ *app, err error) {
	// Before anything starts: a replica that will not run must not start a
	// server or touch a shared NATS first.
	if err := checkPartialCredentials(cfg); err != nil {
		return nil, err
	}
	a := &app{cfg: cfg, log: log, reg: prometheus.NewRegistry(), catalog: actions.NewCatalog()}
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	a.rules, err = rules.NewCoordinator(cfg.Rules.Dir, a.catalog, eventShapes(), log, a.reg)
	if err != nil {
		return nil, err
	}

	configured := cfg.NATS.DedupWindow
	if source := cfg.coverReplays(); source != "" {
		log.Info("nats.dedup_window raised to cover the replay window of a signed source: twice its timestamp tolerance",
			"dedup_window", cfg.NATS.DedupWindow, "configured", configured, "source", source)
	}
	a.bus, err = bus.Open(ctx, cfg.NATS, log)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			a.bus.Close()
		}
	}()
	if err := bus.Setup(ctx, a.bus.JS, cfg.NATS); err != nil {
		return nil, err
	}
	if a.bus.Embedded() {
		// No other replica shares an embedded server: the consumer that a
		// pool with one lane used has none left to serve.
		switch err := a.bus.JS.DeleteConsumer(ctx, bus.ActionsStream, bus.OneLaneConsumer); {
		case err == nil:
			log.Info("removed the consumer of an earlier version's pool; its jobs run in the two lanes", "consumer", bus.OneLaneConsumer)
		case !errors.Is(err, jetstream.ErrConsumerNotFound):
			log.Warn("could not remove the consumer of an earlier version's pool", "consumer", bus.OneLaneConsumer, "err", err)
		}
	}

	// Event ids are remembered by the bot, not by the stream (see
	// ingest.RecentIDs); it reads those stored last, below.
	a.recent = ingest.NewRecentIDs(cfg.NATS.DedupWindow)
	a.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "bot_event_ids_remembered",
		Help: "Event ids remembered to recognise repeats within nats.dedup_window.",
	}, func() float64 { return float64(a.recent.Len()) }), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "bot_event_ids_behind",
		Help: "Events stored (by any replica) whose ids this replica had not read yet, when it last read one or looked at the stream; -1 before the first.",
	}, func() float64 { return float64(a.recent.Behind()) }))
	events := &ingest.JetStreamPublisher{JS: a.bus.JS, Recent: a.recent}
	if a.bus.Batches() {
		events.Batcher = bus.NewBatcher(a.bus.JS, bus.EventsStream)
		a.reg.MustRegister(batcherMetrics(bus.EventsStream, events.Batcher)...)
	}
	rt := &actions.Runtime{
		Log:       log,
		Events:    events,
		Schedules: &actions.Queue{JS: a.bus.JS, MayRemove: a.bus.HasRoom},
		// One cache of the ticket field list for every job, across reloads.
		TicketFields: &actions.TicketFieldIDs{},
		HTTP: actions.NewHTTPCaller(nil, cfg.Dispatch.HTTPRateLimit.Calls, cfg.Dispatch.HTTPRateLimit.Per,
			cfg.Dispatch.AttemptTimeout),
	}
	var limiter *actions.Limiter
	if cfg.Comm100.HasCredentials() && !cfg.Dispatch.DryRun {
		bc, err := budgetConfig(cfg, os.Hostname)
		if err != nil {
			return nil, err
		}
		var hc *http.Client
		if hc, limiter, err = budgetedHTTPClient(ctx, a.bus.JS, bc, cfg.Comm100.Timeout, log, a.reg); err != nil {
			return nil, err
		}
		client, err := comm100.New(cfg.Comm100, hc)
		if err != nil {
			return nil, err
		}
		rt.Comm100 = client
		log.Info("Comm100 API", "base_url", client.BaseURL(), "site_id", cfg.Comm100.SiteID, "auth", client.Auth(),
			"rate_limit", fmt.Sprintf("%d/%s", cfg.Comm100.RateLimit.Calls, cfg.Comm100.RateLimit.Per),
			"budget", bc.Name, "shared", cfg.Comm100.RateLimit.Shared)
	} else {
		log.Warn("DRY RUN: no Comm100 credentials configured (comm100.site_id, comm100.email, and comm100.api_key " +
			"or comm100.password + comm100.client_id); Comm100 actions are logged, not sent")
	}
	// Ingest, the rules and the pool each talk to NATS on their own
	// connection: on one socket, the pool's round trips would queue behind
	// thousands of webhook and job publishes.
	poolJS, err := a.bus.Connect("bot-pool")
	if err != nil {
		return nil, err
	}
	rulesJS, err := a.bus.Connect("bot-rules")
	if err != nil {
		return nil, err
	}
	jobs := &actions.Queue{JS: rulesJS}
	if a.bus.Batches() {
		jobs.Batcher = bus.NewPacedBatcher(rulesJS, bus.ActionsStream, jobsPause)
		a.reg.MustRegister(batcherMetrics(bus.ActionsStream, jobs.Batcher)...)
	}
	dispatch := cfg.Dispatch
	dispatch.Replicas = cfg.NATS.Replicas
	dispatch.CallTimeout = cfg.Comm100.Timeout
	a.pool, err = actions.NewPool(dispatch, poolJS, a.catalog, rt, limiter, log, a.reg)
	if err != nil {
		return nil, err
	}
	a.pool.MayRemove = a.bus.HasRoom
	a.router, err = rules.NewRouter(rulesJS, a.rules.Engine, jobs, log, a.reg)
	if err != nil {
		return nil, err
	}
	a.ingest, err = ingest.New(ingest.Config{MaxBodyBytes: cfg.HTTP.MaxBodyBytes, MaxInFlightBytes: cfg.HTTP.MaxInFlightBytes, Sources: cfg.Sources},
		events, log, a.reg)
	if err != nil {
		return nil, err
	}

	hooks := newRouter("not found; webhooks are posted to /hooks/<source>")
	a.ingest.Register(hooks.mux)
	admin := newRouter("not found; the admin endpoints are /healthz, /readyz, /metrics, /-/reload and /debug/pprof/")
	admin.handle(http.MethodGet, "/healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if err := a.bus.Broken(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "broken", "error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
	admin.handle(http.MethodGet, "/readyz", http.HandlerFunc(a.handleReady))
	admin.handle(http.MethodGet, "/metrics", requireBearer(cfg.HTTP.AdminToken, promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{})))
	admin.handle(http.MethodPost, "/-/reload", requireBearer(cfg.HTTP.AdminToken, http.HandlerFunc(a.handleReload)))
	admin.handle(http.MethodGet, "/debug/pprof/", profilesFor(cfg.HTTP))

	// The ids stored within the window, read last so that run starts
	// reading new ones right after: other replicas' repeats are recognised
	// from then on.
	idsJS, err := a.bus.Connect("bot-event-ids")
	if err != nil {
		return nil, err
	}
	if a.followIDs, err = a.recent.Follow(ctx, idsJS, bus.EventsStream, log); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil { // let the reader go: run it with a context already done
			done, cancel := context.WithCancel(ctx)
			cancel()
			_ = a.followIDs(done)
		}
	}()

	if a.ln, err = listen("http.addr", cfg.HTTP); err != nil {
		return nil, err
	}
	if a.adminLn, err = listen("http.admin_addr", cfg.HTTP); err != nil {
		a.ln.Close()
		return nil, err
	}
	if !isLoopback(cfg.HTTP.AdminAddr) && cfg.HTTP.AdminToken == "" {
		log.Warn("the admin listener is reachable from other hosts and http.admin_token is not set: "+
			"anybody who reaches it can read the metrics and reload the rules", "admin_addr", a.AdminAddr())
	}
	a.srv = newHTTPServer(cfg.HTTP, hooks, log)
	a.adminSrv = newHTTPServer(cfg.HTTP, admin, log)
	return a, nil
}

// listen binds the address of key ("http.addr" or "http.admin_addr").
func listen(key string, cfg HTTPConfig) (net.Listener, error) {
	addr := cfg.Addr
	if key == "http.admin_addr" {
		addr = cfg.AdminAddr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", key, addr, err)
	}
	return jsonListener{Listener: ln, maxHeaderBytes: cfg.MaxHeaderBytes}, nil
}

// Addr is the address the webhook listener listens on.
func (a *app) Addr() string { return a.ln.Addr().String() }

// AdminAddr is the address the admin listener listens on.
func (a *app) AdminAddr() string { return a.adminLn.Addr().String() }

// run serves until ctx is done or a part fails, then shuts everything down:
// HTTP first (no new events), then the router and the pool (jobs in hand
// finish), then the bus.
func (a *app) run(ctx context.Context) error {
	defer a.bus.Close()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	var wg sync.WaitGroup
	start := func(name string, fn func(context.Context) error) {
		wg.Go(func() {
			if err := fn(ctx); err != nil {
				cancel(fmt.Errorf("%s: %w", name, err))
			}
		})
	}
	start("event ids", a.followIDs)
	start("bus watch", a.bus.Run)
	start("worker pool", a.pool.Run)
	start("rules", a.router.Run)
	if *a.cfg.Rules.Watch {
		start("rules watcher", func(ctx context.Context) error { return a.rules.Watch(ctx, a.cfg.Rules.Debounce) })
	}
	wg.Go(func() {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				_, _ = a.rules.Reload("SIGHUP")
			}
		}
	})
	for _, s := range []struct {
		name string
		srv  *http.Server
		ln   net.Listener
	}{{"http", a.srv, a.ln}, {"admin http", a.adminSrv, a.adminLn}} {
		wg.Go(func() {
			if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				cancel(fmt.Errorf("%s: %w", s.name, err))
			}
		})
	}
	a.log.Info("bot serving", "addr", a.Addr(), "admin_addr", a.AdminAddr(), "dry_run", a.pool.DryRun())

	<-ctx.Done()
	a.log.Info("shutting down")
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer scancel()
	_ = a.srv.Shutdown(sctx)
	_ = a.adminSrv.Shutdown(sctx)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func (a *app) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := a.bus.Ready(ctx); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
		return
	}
	switch {
	case a.rules.Engine() == nil:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": "no rules loaded"})
	default:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	}
}

func (a *app) handleReload(w http.ResponseWriter, _ *http.Request) {
	eng, err := a.rules.Reload("POST /-/reload")
	if err != nil {
		var list rules.ErrorList
		msgs := []string{err.Error()}
		if errors.As(err, &list) {
			msgs = msgs[:0]
			for _, e := range list {
				msgs = append(msgs, e.Error())
			}
		}
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "rules not reloaded; the old rules keep running", "errors": msgs})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"files": eng.Files(), "rules": len(eng.Rules())})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// jobsPause is the least time between one group of jobs stored on ACTIONS
// and the next (see bus.NewPacedBatcher). Measured with bot bench at 64
// connections, runs alternating: 8 ms took 12 and 19% more webhooks a
// second than two groups in flight without a pause (medians of 6 runs
// each, two rounds); 3 ms 2.5%, 5 ms 8%, 12 ms no more than 8 ms. The jobs
// wait for it: from webhook to job done, p50 19 ms instead of 11 to 14.
const jobsPause = 8 * time.Millisecond

// batcherMetrics reports what the Batcher of stream has stored: atomic
// batches committed and refused, and messages stored in batches and one by
// one. Few messages a batch, or most of them alone, mean the disk's syncs,
// not the batches, set the pace.
func batcherMetrics(stream string, b *bus.Batcher) []prometheus.Collector {
	counter := func(name, help string, labels prometheus.Labels, value func(bus.BatcherStats) int64) prometheus.Collector {
		labels["stream"] = stream
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels},
			func() float64 { return float64(value(b.Stats())) })
	}
	const messages = "Messages stored on the stream through its batcher (nats.sync always), in atomic batches (how=batch) or one by one (how=alone)."
	return []prometheus.Collector{
		counter("bot_bus_batches_total", "Atomic batches committed to the stream (nats.sync always).", prometheus.Labels{},
			func(s bus.BatcherStats) int64 { return s.Batches }),
		counter("bot_bus_batches_refused_total", "Atomic batches the stream refused; their messages went again, in halves or one by one.", prometheus.Labels{},
			func(s bus.BatcherStats) int64 { return s.Refused }),
		counter("bot_bus_messages_total", messages, prometheus.Labels{"how": "batch"},
			func(s bus.BatcherStats) int64 { return s.Batched }),
		counter("bot_bus_messages_total", messages, prometheus.Labels{"how": "alone"},
			func(s bus.BatcherStats) int64 { return s.Alone }),
	}
}

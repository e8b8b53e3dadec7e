package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/pflag"

	"github.com/comm100bot/bot/internal/actions"
	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/comm100"
	"github.com/comm100bot/bot/internal/ingest"
	"github.com/comm100bot/bot/internal/rules"
)

func serveCmd(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("bot serve", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	configFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(fs, environ)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
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
	ln      net.Listener
	srv     *http.Server
}

// newApp builds and connects everything and binds the HTTP listener, so that
// Addr is known before run starts serving.
func newApp(ctx context.Context, cfg *Config, log *slog.Logger) (_ *app, err error) {
	a := &app{cfg: cfg, log: log, reg: prometheus.NewRegistry(), catalog: actions.NewCatalog()}
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	a.rules, err = rules.NewCoordinator(cfg.Rules.Dir, a.catalog, eventShapes(), log, a.reg)
	if err != nil {
		return nil, err
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

	events := &ingest.JetStreamPublisher{JS: a.bus.JS}
	rt := &actions.Runtime{
		Log:       log,
		Events:    events,
		Schedules: &actions.Publisher{JS: a.bus.JS},
		HTTP: actions.NewHTTPCaller(nil, cfg.Dispatch.HTTPRateLimit.Calls, cfg.Dispatch.HTTPRateLimit.Per,
			cfg.Dispatch.AttemptTimeout),
	}
	var limiter *actions.Limiter
	if cfg.Comm100.HasCredentials() && !cfg.Dispatch.DryRun {
		limiter = actions.NewLimiter(cfg.Comm100.RateLimit.Calls, cfg.Comm100.RateLimit.Per, nil)
		// No client-wide timeout: it would count the wait for the budget.
		// The transport bounds each call from its grant.
		waits := prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bot_limiter_wait_seconds",
			Help:    "How long Comm100 calls waited for the shared budget.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		})
		a.reg.MustRegister(waits)
		hc := &http.Client{Transport: &actions.LimitedTransport{Limiter: limiter, Timeout: cfg.Comm100.Timeout, Waits: waits}}
		client, err := comm100.New(cfg.Comm100, hc)
		if err != nil {
			return nil, err
		}
		rt.Comm100 = client
		log.Info("Comm100 API", "base_url", client.BaseURL(), "site_id", cfg.Comm100.SiteID, "auth", client.Auth(),
			"rate_limit", fmt.Sprintf("%d/%s", cfg.Comm100.RateLimit.Calls, cfg.Comm100.RateLimit.Per))
	} else {
		log.Warn("DRY RUN: no Comm100 credentials configured (comm100.site_id, comm100.email, and comm100.api_key " +
			"or comm100.password + comm100.client_id); Comm100 actions are logged, not sent")
	}
	a.pool, err = actions.NewPool(cfg.Dispatch, a.bus.JS, a.catalog, rt, limiter, events, log, a.reg)
	if err != nil {
		return nil, err
	}
	a.router, err = rules.NewRouter(a.bus.JS, a.rules.Engine, &actions.Publisher{JS: a.bus.JS}, log, a.reg)
	if err != nil {
		return nil, err
	}
	a.ingest, err = ingest.New(ingest.Config{MaxBodyBytes: cfg.HTTP.MaxBodyBytes, Sources: cfg.Sources},
		events, log, a.reg)
	if err != nil {
		return nil, err
	}

	mux := http.NewServeMux()
	a.ingest.Register(mux)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", a.handleReady)
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("POST /-/reload", a.handleReload)

	a.ln, err = net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return nil, fmt.Errorf("http.addr %s: %w", cfg.HTTP.Addr, err)
	}
	a.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       cfg.HTTP.ReadTimeout,
		WriteTimeout:      cfg.HTTP.WriteTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return a, nil
}

// Addr is the address the HTTP server listens on.
func (a *app) Addr() string { return a.ln.Addr().String() }

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
	wg.Go(func() {
		if err := a.srv.Serve(a.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cancel(fmt.Errorf("http: %w", err))
		}
	})
	a.log.Info("bot serving", "addr", a.Addr(), "dry_run", a.pool.DryRun())

	<-ctx.Done()
	a.log.Info("shutting down")
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer scancel()
	_ = a.srv.Shutdown(sctx)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func (a *app) handleReady(w http.ResponseWriter, _ *http.Request) {
	switch {
	case !a.bus.Connected():
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": "NATS is not connected"})
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

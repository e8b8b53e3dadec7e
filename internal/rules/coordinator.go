package rules

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/comm100bot/bot/internal/actions"
)

// Coordinator owns the running rule set of a rules folder: it loads it,
// reloads it on demand or when files change, swaps a new set in only when
// all of it compiles (a refused load keeps the old set running), and
// reports every load in the bot_rules_* gauges. Events being evaluated
// finish on the set they started with. Safe for concurrent use.
type Coordinator struct {
	dir     string
	catalog *actions.Catalog
	shapes  *Shapes
	log     *slog.Logger
	now     func() time.Time

	engine atomic.Pointer[Engine]
	// mu makes loads one at a time, so that the set swapped in last is the
	// one read last from disk.
	mu sync.Mutex

	success   prometheus.Gauge
	timestamp prometheus.Gauge
	loaded    prometheus.Gauge
}

// NewCoordinator loads the rules under dir (as LoadDir, with catalog and
// shapes) and registers its gauges with reg, which may be nil. It fails
// when the rules do not load: there is no old set to keep running.
func NewCoordinator(dir string, catalog *actions.Catalog, shapes *Shapes, log *slog.Logger, reg prometheus.Registerer) (*Coordinator, error) {
	c := &Coordinator{dir: dir, catalog: catalog, shapes: shapes, log: log, now: time.Now}
	c.success = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "bot_rules_reload_success",
		Help: "1 if the last load of the rules succeeded, 0 if it was refused (the old rules keep running).",
	})
	c.timestamp = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "bot_rules_reload_timestamp_seconds",
		Help: "Unix time of the last successful load of the rules.",
	})
	c.loaded = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "bot_rules_loaded",
		Help: "Rules in the running set.",
	})
	eng, err := LoadDir(dir, catalog, shapes)
	if err != nil {
		return nil, fmt.Errorf("rules in %s:\n%w", dir, err)
	}
	if reg != nil {
		for _, g := range []prometheus.Collector{c.success, c.timestamp, c.loaded} {
			if err := reg.Register(g); err != nil {
				return nil, fmt.Errorf("register rules metrics: %w", err)
			}
		}
	}
	c.swap(eng)
	if eng.Files() == 0 {
		log.Warn("no rule file found: no event will match a rule", "dir", dir)
	} else {
		log.Info("rules loaded", "dir", dir, "files", eng.Files(), "rules", len(eng.Rules()))
	}
	return c, nil
}

// Engine returns the running rule set.
func (c *Coordinator) Engine() *Engine { return c.engine.Load() }

// Reload loads the rules again and swaps them in if they all compile; why
// (a file change, SIGHUP, the HTTP endpoint) goes to the log. On error the
// old set keeps running and the error, an ErrorList when the rules
// themselves are wrong, is returned.
func (c *Coordinator) Reload(why string) (*Engine, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	eng, err := LoadDir(c.dir, c.catalog, c.shapes)
	if err == nil && eng.Files() == 0 && len(c.Engine().Rules()) > 0 {
		// Most likely a deploy between removing the old files and copying
		// the new: every event meanwhile would match nothing, for good.
		err = fmt.Errorf("no rule file in %s; to run without rules, leave a file that says \"rules: []\"", c.dir)
	}
	if err != nil {
		c.success.Set(0)
		c.log.Error("rules reload refused; the old rules keep running", "trigger", why, "err", err)
		return nil, err
	}
	c.swap(eng)
	c.log.Info("rules reloaded", "trigger", why, "files", eng.Files(), "rules", len(eng.Rules()))
	return eng, nil
}

func (c *Coordinator) swap(eng *Engine) {
	c.engine.Store(eng)
	c.success.Set(1)
	c.timestamp.Set(float64(c.now().UnixNano()) / 1e9)
	c.loaded.Set(float64(len(eng.Rules())))
}

// Watch reloads the rules whenever a rule file under the folder changes,
// once per burst of changes (debounce), until ctx is done.
func (c *Coordinator) Watch(ctx context.Context, debounce time.Duration) error {
	return watch(ctx, c.dir, debounce, c.log, func() { _, _ = c.Reload("file change") })
}

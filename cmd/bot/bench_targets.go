package main

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/pflag"

	"github.com/comm100bot/bot/internal/actions"
	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/comm100/comm100test"
	"github.com/comm100bot/bot/internal/job"
	"github.com/comm100bot/bot/internal/rules"
)

// completionTap is told by the pool of every job it finishes
// (actions.Pool.Observe), and so knows when each job of an event was done.
// It holds no pointers, nor does the bench's record of accepted events, so
// that a long run gives the garbage collector of the process it shares with
// the bot nothing more to scan.
type completionTap struct {
	mu   sync.Mutex
	done []completion
}

type completion struct {
	event uint64        // eventKey of the job's event
	at    time.Duration // since benchEpoch
}

// benchEpoch is the origin of the bench's clock readings.
var benchEpoch = time.Now()

var eventKeySeed = maphash.MakeSeed()

// eventKey stands for an event id: 64 bits of hash. Two of a million events
// share one with odds of about one in forty million, and then only their
// end-to-end figures mix.
func eventKey(id string) uint64 { return maphash.String(eventKeySeed, id) }

func (t *completionTap) reset() {
	t.mu.Lock()
	t.done = t.done[:0]
	t.mu.Unlock()
}

func (t *completionTap) observe(j *job.Job) {
	c := completion{eventKey(j.EventID), time.Since(benchEpoch)}
	t.mu.Lock()
	t.done = append(t.done, c)
	t.mu.Unlock()
}

// latencies returns, for every finished job whose event was accepted in
// this run, the time from the event's 202 to the job's end.
func (t *completionTap) latencies(accepted map[uint64]time.Duration) []time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []time.Duration
	for _, c := range t.done {
		if at, ok := accepted[c.event]; ok {
			out = append(out, max(0, c.at-at))
		}
	}
	return out
}

// benchBot is a bot started in this process for the bench.
type benchBot struct {
	app      *app
	tap      *completionTap
	describe string
	logFile  *os.File
	cancel   context.CancelFunc
	done     chan error
	sim      *http.Server
}

func startBenchBot(ctx context.Context, o benchOptions, tmp string) (*benchBot, error) {
	rulesDir := filepath.Join(tmp, "rules")
	if err := os.MkdirAll(rulesDir, 0o755); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(o.RulesDir)
	if err != nil {
		return nil, fmt.Errorf("--rules: %w", err)
	}
	shipped := 0
	for _, e := range entries {
		if e.IsDir() || !rules.IsRuleFile(e.Name()) {
			continue
		}
		if err := copyFile(filepath.Join(o.RulesDir, e.Name()), filepath.Join(rulesDir, e.Name())); err != nil {
			return nil, err
		}
		shipped++
	}
	// The rules' inline tests name their sample events; the loader checks them.
	if err := os.CopyFS(filepath.Join(rulesDir, "testdata"), os.DirFS(filepath.Join(o.RulesDir, "testdata"))); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("copy the rules' testdata: %w", err)
	}
	if err := os.WriteFile(filepath.Join(rulesDir, "zz_bench.yaml"), []byte(benchRule), 0o644); err != nil {
		return nil, err
	}
	if o.ExtraRules > 0 {
		if err := os.WriteFile(filepath.Join(rulesDir, "zz_bench_extra.yaml"), []byte(extraRules(o.ExtraRules)), 0o644); err != nil {
			return nil, err
		}
	}

	b := &benchBot{tap: &completionTap{}, done: make(chan error, 1)}
	flags := []string{
		"--http.addr", "127.0.0.1:0",
		"--http.admin_addr", "127.0.0.1:0",
		"--nats.listen", "127.0.0.1:-1",
		"--nats.store_dir", filepath.Join(tmp, "nats"),
		"--rules.dir", rulesDir,
		"--rules.watch=false",
		"--log.level", o.LogLevel,
		"--log.format", "text",
		"--nats.sync", o.Sync,
	}
	if o.Workers > 0 {
		flags = append(flags, "--dispatch.workers", strconv.Itoa(o.Workers))
	}
	b.describe = fmt.Sprintf("embedded NATS with sync %s, rules of %s (%d files) + the bench rule + %d extra", o.Sync, o.RulesDir, shipped, o.ExtraRules)
	if o.Sim {
		sim := comm100test.New(comm100test.Config{RateLimit: comm100test.IPRateLimit{Calls: -1}})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		b.sim = &http.Server{Handler: sim, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = b.sim.Serve(ln) }()
		site, email, key := sim.Credentials()
		flags = append(flags,
			"--comm100.base_url", "http://"+ln.Addr().String()+comm100test.APIPrefix,
			"--comm100.site_id", site, "--comm100.email", email, "--comm100.api_key", key,
			// The simulator's limit is off; so is, in effect, the bot's.
			"--comm100.rate_limit.calls", "100000", "--comm100.rate_limit.per", "1s")
		b.describe += ", Comm100 simulator with no limit"
	} else {
		b.describe += ", dry run"
	}
	fs := pflag.NewFlagSet("bench bot", pflag.ContinueOnError)
	configFlags(fs)
	if err := fs.Parse(flags); err != nil {
		return nil, err
	}
	environ := []string{
		"BOT_SOURCES__COMM100__KIND=comm100",
		"BOT_SOURCES__BENCH__KIND=generic",
		"BOT_SOURCES__BENCH__TYPE=body.type",
		"BOT_SOURCES__BENCH__ID=body.id",
	}
	cfg, err := loadConfig(fs, environ)
	if err != nil {
		return nil, err
	}
	logPath := o.BotLog
	if logPath == "" {
		logPath = filepath.Join(tmp, "bot.log")
	}
	b.logFile, err = os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("--bot-log: %w", err)
	}
	log := newLogger(cfg.Log, b.logFile)
	actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	b.cancel = cancel
	b.app, err = newApp(actx, cfg, log)
	if err != nil {
		cancel()
		b.logFile.Close()
		return nil, err
	}
	b.app.pool.Observe = b.tap.observe
	go func() { b.done <- b.app.run(actx) }()
	if err := waitReady(ctx, "http://"+b.app.AdminAddr()); err != nil {
		b.stop()
		return nil, err
	}
	return b, nil
}

func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, data, 0o644)
}

func waitReady(ctx context.Context, base string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the in-process bot did not become ready at %s", base)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (b *benchBot) stop() {
	b.cancel()
	<-b.done
	if b.sim != nil {
		_ = b.sim.Close()
	}
	b.logFile.Close()
}

func (b *benchBot) BaseURL() string         { return "http://" + b.app.Addr() }
func (b *benchBot) Pipeline() pipelineProbe { return b }

func (b *benchBot) Counts(ctx context.Context) (sample, error) {
	return scrape(ctx, "http://"+b.app.AdminAddr(), "")
}

// Backlog reads the two durable consumers: what they have not been given
// yet and what they hold unacknowledged.
func (b *benchBot) Backlog(ctx context.Context, _, _ int64) (int64, int64, error) {
	ev, err := bus.Waiting(ctx, b.app.bus.JS, bus.EventsStream, bus.RulesConsumer)
	if err != nil {
		return 0, 0, err
	}
	jobs, err := actions.JobsWaiting(ctx, b.app.bus.JS)
	return int64(ev), int64(jobs), err
}

// externalBot is a bot at --url, observed through its /metrics.
type externalBot struct{ base, admin, token string }

func (e *externalBot) BaseURL() string         { return e.base }
func (e *externalBot) Pipeline() pipelineProbe { return e }

func (e *externalBot) Counts(ctx context.Context) (sample, error) {
	return scrape(ctx, e.admin, e.token)
}

// Backlog of an external bot, from its bot_events_waiting and
// bot_jobs_waiting; a bot without them (or that cannot tell) gives the
// accepted events not yet evaluated and no figure for its jobs.
func (e *externalBot) Backlog(ctx context.Context, evaluated, accepted int64) (int64, int64, error) {
	s, err := scrape(ctx, e.admin, e.token)
	if err != nil {
		return 0, 0, err
	}
	if s.eventsWaiting < 0 {
		s.eventsWaiting = max(0, accepted-evaluated)
	}
	return s.eventsWaiting, s.jobsWaiting, nil
}

// finishedOutcomes are the bot_jobs_total outcomes of a job that is finished.
var finishedOutcomes = []string{"done", "dry_run", "duplicate", "cancelled", "dead"}

// adminGet GETs url from a bot's admin listener, with the bearer token if
// there is one, and returns the body of a 200 answer.
func adminGet(ctx context.Context, url, token string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(msg)))
	}
	return resp.Body, nil
}

// sample is what the bench reads from a bot's /metrics: the events
// evaluated, the jobs finished, what waits (-1 when not known), and what
// each stream's batcher stored (nats.sync always only), by stream.
type sample struct {
	events, jobs               int64
	eventsWaiting, jobsWaiting int64
	batches                    map[string]batchUse
}

// batchUse is what a stream's batcher stored: atomic batches, the messages
// in them, and the messages sent one by one.
type batchUse struct {
	Stream  string `json:"stream"`
	Batches int64  `json:"batches"`
	Batched int64  `json:"batched_messages"`
	Alone   int64  `json:"messages_alone"`
}

// since is what was stored between was and u; a counter lower than it was
// (the bot started again) counts from zero.
func (u batchUse) since(was batchUse) batchUse {
	d := func(now, then int64) int64 {
		if now < then {
			return now
		}
		return now - then
	}
	return batchUse{Stream: u.Stream, Batches: d(u.Batches, was.Batches), Batched: d(u.Batched, was.Batched), Alone: d(u.Alone, was.Alone)}
}

// scrape reads bot_rules_events_total, the finished jobs of bot_jobs_total,
// bot_events_waiting, bot_jobs_waiting, bot_bus_batches_total and
// bot_bus_messages_total from the bot's /metrics.
func scrape(ctx context.Context, base, token string) (s sample, err error) {
	s.eventsWaiting, s.jobsWaiting = -1, -1
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	body, err := adminGet(ctx, base+"/metrics", token)
	if err != nil {
		return s, err
	}
	defer body.Close()
	data, err := io.ReadAll(body)
	if err != nil {
		return s, err
	}
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#") {
			continue
		}
		var name, labels, value string
		if n, rest, ok := strings.Cut(line, "{"); ok {
			if labels, value, ok = strings.Cut(rest, "} "); !ok {
				continue
			}
			name = n
		} else if name, value, ok = strings.Cut(line, " "); !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		switch name {
		case "bot_rules_events_total":
			s.events += int64(v)
		case "bot_jobs_total":
			if slices.Contains(finishedOutcomes, labelValue(labels, "outcome")) {
				s.jobs += int64(v)
			}
		case "bot_events_waiting":
			s.eventsWaiting = int64(v)
		case "bot_jobs_waiting":
			s.jobsWaiting = int64(v)
		case "bot_bus_batches_total", "bot_bus_messages_total":
			stream := labelValue(labels, "stream")
			if stream == "" {
				continue
			}
			if s.batches == nil {
				s.batches = map[string]batchUse{}
			}
			u := s.batches[stream]
			u.Stream = stream
			switch {
			case name == "bot_bus_batches_total":
				u.Batches = int64(v)
			case labelValue(labels, "how") == "batch":
				u.Batched = int64(v)
			case labelValue(labels, "how") == "alone":
				u.Alone = int64(v)
			}
			s.batches[stream] = u
		}
	}
	return s, nil
}

// labelValue is the value of label name in a metric line's labels
// (`a="x",b="y"`), or "".
func labelValue(labels, name string) string {
	_, rest, ok := strings.Cut(","+labels, ","+name+`="`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}

// floorServer is the floor of this stack: read the body, publish it with a
// message id to an embedded JetStream stream, answer 202 after the PubAck.
type floorServer struct {
	bus  *bus.Bus
	srv  *http.Server
	ln   net.Listener
	seq  atomic.Uint64
	done chan struct{}
}

func startFloor(ctx context.Context, dir, sync string) (*floorServer, error) {
	b, err := bus.Open(ctx, bus.Config{StoreDir: dir, Listen: "127.0.0.1:-1", Sync: sync}, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	_, err = b.JS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:       "FLOOR",
		Subjects:   []string{"floor.>"},
		Storage:    jetstream.FileStorage,
		Duplicates: 2 * time.Minute,
	})
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("floor stream: %w", err)
	}
	f := &floorServer{bus: b, done: make(chan struct{})}
	f.ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Close()
		return nil, err
	}
	f.srv = &http.Server{Handler: f, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	go func() {
		defer close(f.done)
		_ = f.srv.Serve(f.ln)
	}()
	return f, nil
}

func (f *floorServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		http.Error(w, `{"error":"read"}`, http.StatusBadRequest)
		return
	}
	id := strconv.FormatUint(f.seq.Add(1), 10) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if _, err := f.bus.JS.Publish(ctx, "floor.events", body, jetstream.WithMsgID(id)); err != nil {
		w.Header().Set("Retry-After", "5")
		http.Error(w, `{"error":"bus"}`, http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte(`{"id":"` + id + `"}` + "\n"))
}

func (f *floorServer) BaseURL() string         { return "http://" + f.ln.Addr().String() }
func (f *floorServer) Pipeline() pipelineProbe { return nil }

func (f *floorServer) stop() {
	_ = f.srv.Close()
	<-f.done
	f.bus.Close()
}

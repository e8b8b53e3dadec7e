package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/comm100bot/bot/internal/bus"
	"github.com/comm100bot/bot/internal/ingest"
)

func benchCommand() *command {
	return &command{
		name:    "bench",
		args:    "[flags]",
		summary: "load-test a bot (or one started in-process) and report its figures",
		long: `Posts real-shaped webhooks, each with a unique id, to a bot and reports
throughput, latency percentiles, refusals, the rules' and the pool's rates,
the end-to-end latency (webhook accepted -> job done), and the resident
memory: sampled through each bot run's load (its highest in the second and
in the last quarter say whether it still grows) and at its peak.

Without --url it starts a bot in this process: an embedded NATS server in a
temporary directory, the rules of --rules (plus a generic source "bench" and
its rule), in dry run, or against an in-process Comm100 simulator with its
limit off (--sim). With --floor it also runs, in the same process, the bare
floor of this stack: an HTTP handler that reads the body, publishes it with a
message id to an embedded JetStream stream and answers 202 after the PubAck.
Floor and bot runs alternate; the medians of each are compared, and so is
each bot run with the floor run just before it.

Examples:
  bot bench --floor --runs 5 --duration 10s --connections 64
  bot bench --rate 2000 --duration 5m
  bot bench --payload generic --extra-rules 1000
  bot bench --url http://localhost:8080 --admin-url http://127.0.0.1:8081 --pid $(pidof bot)

On a machine shared with other work, figures vary from run to run: take the
medians of several runs (--runs), each next to its floor (--floor)`,
		run: benchCmd,
	}
}

// benchOptions are the settings of one `bot bench`.
type benchOptions struct {
	URL         string
	AdminURL    string
	AdminToken  string
	Connections int
	Rate        float64
	Duration    time.Duration
	Runs        int
	Floor       bool
	Payload     string
	Sim         bool
	RulesDir    string
	ExtraRules  int
	Drain       time.Duration
	PID         int
	JSON        bool
	CPUProfile  string
	MemProfile  string
	Trace       string
	BotLog      string
	LogLevel    string
	Comm100Path string
	GenericPath string
	Workers     int
	Sync        string
}

func benchCmd(ctx context.Context, c *command, e *cmdEnv, args []string) error {
	stdout, stderr := e.stdout, e.stderr
	fs := c.flagSet(e)
	var o benchOptions
	for _, kv := range e.environ {
		if v, ok := strings.CutPrefix(kv, "BOT_HTTP__ADMIN_TOKEN="); ok {
			o.AdminToken = v
		}
	}
	fs.StringVar(&o.URL, "url", "", "base URL of a running bot's webhooks (http://host:port); empty starts one in this process")
	fs.StringVar(&o.AdminURL, "admin-url", "http://127.0.0.1:8081", "with --url: base URL of the bot's admin listener, whose /metrics give the rules' and the pool's rates (bearer token from BOT_HTTP__ADMIN_TOKEN)")
	fs.IntVar(&o.Connections, "connections", 64, "HTTP connections (concurrent requests)")
	fs.Float64Var(&o.Rate, "rate", 0, "webhooks per second to send, spread over the connections; 0 sends as fast as the connections allow")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "how long each run sends webhooks")
	fs.IntVar(&o.Runs, "runs", 1, "runs of the bot (and, with --floor, as many of the floor, alternating); medians are reported")
	fs.BoolVar(&o.Floor, "floor", false, "also run the bare HTTP -> JetStream floor in this process and report the bot's ratio to it")
	fs.StringVar(&o.Payload, "payload", "comm100", `what to post: "comm100" (Comm100 chat_ended webhooks rated 1: one rule, two actions), "generic" (JSON orders to source "bench": one rule, two log actions) or "mix" (both, alternating)`)
	fs.BoolVar(&o.Sim, "sim", false, "in-process bot only: call an in-process Comm100 simulator with its rate limit off, instead of dry run")
	fs.StringVar(&o.RulesDir, "rules", "./rules", "in-process bot only: directory of the rules to load (the bench source's rule is added)")
	fs.IntVar(&o.ExtraRules, "extra-rules", 0, "in-process bot only: add this many rules that never match (1% of them candidates for the posted events)")
	fs.DurationVar(&o.Drain, "drain", 2*time.Minute, "after each run, wait at most this long for the rules and the pool to finish the backlog")
	fs.IntVar(&o.PID, "pid", 0, "with --url: process id of the bot, whose resident memory is sampled and whose peak RSS (VmHWM) is reported")
	fs.BoolVar(&o.JSON, "json", false, "print the report as JSON")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the bot runs' load phases to this file")
	fs.StringVar(&o.MemProfile, "memprofile", "", "write an allocation profile (taken after the bot runs) to this file")
	fs.StringVar(&o.Trace, "trace", "", "write a Go execution trace of the first bot run's load to this file (go tool trace; with --url, of the running bot, fetched from its /debug/pprof/trace, at most the first "+remoteTraceMax.String()+"), and report how many slow answers overlapped the collector's marking or a file sync longer than 2 ms")
	fs.StringVar(&o.BotLog, "bot-log", "", "in-process bot only: file for the bot's log (default: a file in the temporary directory, removed at the end)")
	fs.StringVar(&o.LogLevel, "log-level", "info", "in-process bot only: the bot's log level")
	fs.StringVar(&o.Comm100Path, "comm100-path", "/hooks/comm100", "path the Comm100 webhooks are posted to")
	fs.StringVar(&o.GenericPath, "generic-path", "/hooks/bench", "path the generic webhooks are posted to")
	fs.StringVar(&o.Sync, "sync", bus.SyncAlways, `in-process bot and floor: nats.sync of their embedded servers, "always" or an interval such as 1s`)
	fs.IntVar(&o.Workers, "workers", 0, "in-process bot only: dispatch.workers (0: the default)")
	if err := c.parse(fs, e, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return c.usageError(e, "unexpected argument %q", fs.Arg(0))
	}
	rep, err := runBench(ctx, o, stderr)
	if err != nil {
		return err
	}
	if o.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	rep.print(stdout)
	return nil
}

func (o *benchOptions) validate() error {
	switch {
	case o.Connections < 1:
		return fmt.Errorf("--connections: want at least 1, got %d", o.Connections)
	case o.Rate < 0:
		return fmt.Errorf("--rate: want 0 or more, got %g", o.Rate)
	case o.Duration <= 0:
		return fmt.Errorf("--duration: want a positive duration, got %s", o.Duration)
	case o.Runs < 1:
		return fmt.Errorf("--runs: want at least 1, got %d", o.Runs)
	case o.ExtraRules < 0:
		return fmt.Errorf("--extra-rules: want 0 or more, got %d", o.ExtraRules)
	case o.URL != "" && (o.Sim || o.ExtraRules > 0 || o.BotLog != "" || o.Workers != 0):
		return fmt.Errorf("--sim, --extra-rules, --bot-log and --workers set up the in-process bot; they cannot be used with --url")
	case o.PID != 0 && o.URL == "":
		return fmt.Errorf("--pid: only with --url (the in-process bot's RSS is this process's)")
	}
	switch o.Payload {
	case "comm100", "generic", "mix":
	default:
		return fmt.Errorf(`--payload: want "comm100", "generic" or "mix", got %q`, o.Payload)
	}
	return nil
}

// benchReport is what `bot bench` prints.
type benchReport struct {
	Target      string        `json:"target"`
	Payload     string        `json:"payload"`
	Connections int           `json:"connections"`
	Rate        float64       `json:"rate,omitempty"`
	Duration    string        `json:"duration"`
	CPUs        int           `json:"cpus"`
	Runs        []benchRun    `json:"runs"`
	Bot         benchSummary  `json:"bot"`
	Floor       *benchSummary `json:"floor,omitempty"`
	// FloorRatio is the bot's median req/s over the floor's; P99Ratio its
	// median p99 over the floor's.
	FloorRatio float64 `json:"floor_ratio,omitempty"`
	P99Ratio   float64 `json:"p99_ratio,omitempty"`
	// Pairs are each bot run against the floor run just before it: on a
	// machine whose pace drifts, the two of a pair ran in the same minute.
	Pairs []floorPair `json:"pairs,omitempty"`
	// PeakRSS is VmHWM in bytes: of this process (bot, NATS and load
	// generator) for the in-process bot, of --pid otherwise; 0 if unknown.
	PeakRSS int64  `json:"peak_rss_bytes"`
	RSSOf   string `json:"rss_of,omitempty"`
	// Trace lines the slow requests of --trace up with the collector and
	// the syncs.
	Trace *traceSummary `json:"trace,omitempty"`
}

// floorPair is one bot run's req/s and p99 over those of the floor run of
// the same round.
type floorPair struct {
	Run      int     `json:"run"`
	RPSRatio float64 `json:"rps_ratio"`
	P99Ratio float64 `json:"p99_ratio"`
}

// floorPairs pairs each bot run with the floor run of its round, leaving out
// a round that lacks either or whose floor measured nothing.
func floorPairs(runs []benchRun) []floorPair {
	floors := map[int]benchRun{}
	for _, r := range runs {
		if r.Target == "floor" {
			floors[r.Run] = r
		}
	}
	var pairs []floorPair
	for _, r := range runs {
		f, ok := floors[r.Run]
		if r.Target != "bot" || !ok || f.RPS <= 0 || f.Latency.P99 <= 0 {
			continue
		}
		pairs = append(pairs, floorPair{Run: r.Run, RPSRatio: r.RPS / f.RPS, P99Ratio: r.Latency.P99 / f.Latency.P99})
	}
	return pairs
}

// benchRun is one run against one target.
type benchRun struct {
	Target   string  `json:"target"` // "bot" or "floor"
	Run      int     `json:"run"`
	Requests int64   `json:"requests"`
	Accepted int64   `json:"accepted"`
	Seconds  float64 `json:"seconds"`
	RPS      float64 `json:"rps"`
	Latency  latency `json:"latency"`
	// Refused counts every answer other than 202, by status ("503"), and
	// the requests that got no answer ("error").
	Refused map[string]int64 `json:"refused,omitempty"`
	// Bot runs only.
	Pipeline *pipelineStats `json:"pipeline,omitempty"`
	// Collector is what Go's collector did during the load, in-process
	// runs only.
	Collector *collectorStats `json:"collector,omitempty"`
	// RSS is the resident memory of the bot's process during the load (of
	// this whole process in-process, of --pid with --url).
	RSS *rssStats `json:"rss,omitempty"`
}

// rssPID is the process whose memory the bot runs watch: this one for the
// in-process bot, --pid with --url; "" for none.
func rssPID(o benchOptions) string {
	switch {
	case o.URL == "":
		return "self"
	case o.PID != 0:
		return strconv.Itoa(o.PID)
	}
	return ""
}

// collectorStats is what Go's collector did in this whole process (the load
// generator, the floor and the in-process bot with its NATS server, whichever
// is busy) during a run's load. The runtime updates its CPU figures when a
// cycle ends: they run from a cycle forced before the load to the last one
// that ended in it.
type collectorStats struct {
	Cycles uint64 `json:"cycles"`
	// CPUShare is the part of the CPUs' capacity (GOMAXPROCS times the wall
	// clock) that the collector took: its workers and the assists, not the
	// marking it does only on a processor that would be idle otherwise.
	CPUShare float64 `json:"cpu_share"`
	// LiveHeap is the heap the last cycle found live, in bytes.
	LiveHeap uint64 `json:"live_heap_bytes"`
	// ScanHeap is the part of the heap that can hold pointers, which
	// each cycle has to visit: what makes a cycle long.
	ScanHeap uint64 `json:"scannable_heap_bytes"`
	// Allocated is how many bytes the process allocated during the load
	// (load generator included), what makes cycles frequent.
	Allocated uint64 `json:"allocated_bytes"`
}

var collectorMetrics = [...]string{"/gc/cycles/total:gc-cycles", "/cpu/classes/gc/total:cpu-seconds",
	"/cpu/classes/total:cpu-seconds", "/gc/heap/live:bytes", "/cpu/classes/gc/mark/idle:cpu-seconds",
	"/gc/scan/heap:bytes", "/gc/heap/allocs:bytes"}

func readCollector() []metrics.Sample {
	s := metricSamples(collectorMetrics[:])
	metrics.Read(s)
	return s
}

// collectorSince returns what the collector did since before was read.
func collectorSince(before []metrics.Sample) *collectorStats {
	after := readCollector()
	c := &collectorStats{Cycles: after[0].Value.Uint64() - before[0].Value.Uint64(), LiveHeap: after[3].Value.Uint64(),
		ScanHeap: after[5].Value.Uint64(), Allocated: after[6].Value.Uint64() - before[6].Value.Uint64()}
	if cpu := after[2].Value.Float64() - before[2].Value.Float64(); cpu > 0 {
		gc := after[1].Value.Float64() - before[1].Value.Float64() - (after[4].Value.Float64() - before[4].Value.Float64())
		c.CPUShare = max(gc, 0) / cpu
	}
	return c
}

// pipelineStats are what the rules and the pool did with a run's events.
type pipelineStats struct {
	// Rates during the load: events evaluated and jobs finished per second.
	RulesRate float64 `json:"rules_events_per_second"`
	PoolRate  float64 `json:"pool_jobs_per_second"`
	// Backlog when the load stopped: events not yet evaluated, jobs not yet
	// finished (-1 when unknown).
	EventsBacklog int64 `json:"events_backlog"`
	JobsBacklog   int64 `json:"jobs_backlog"`
	// Events evaluated and jobs finished in all, once drained.
	Events int64 `json:"events"`
	Jobs   int64 `json:"jobs"`
	// DrainSeconds is how long after the load the backlog took to clear;
	// Drained is false if --drain ran out first.
	DrainSeconds float64 `json:"drain_seconds"`
	Drained      bool    `json:"drained"`
	// EndToEnd is from the 202 to each job's end (in-process bot only).
	EndToEnd *latency `json:"end_to_end,omitempty"`
	// Batches is what each stream's batcher stored during the load (with
	// nats.sync always and the embedded server only).
	Batches []batchUse `json:"batches,omitempty"`
}

// latency is a summary of a latency distribution, in milliseconds.
type latency struct {
	N    int     `json:"n"`
	P50  float64 `json:"p50_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
	Max  float64 `json:"max_ms"`
}

func summarize(ds []time.Duration) latency {
	if len(ds) == 0 {
		return latency{}
	}
	slices.Sort(ds)
	at := func(q float64) float64 {
		i := int(q*float64(len(ds))+0.5) - 1
		i = max(0, min(i, len(ds)-1))
		return ms(ds[i])
	}
	return latency{N: len(ds), P50: at(0.50), P99: at(0.99), P999: at(0.999), Max: ms(ds[len(ds)-1])}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// benchSummary holds the medians of a target's runs.
type benchSummary struct {
	Runs      int     `json:"runs"`
	RPS       float64 `json:"rps"`
	P50       float64 `json:"p50_ms"`
	P99       float64 `json:"p99_ms"`
	P999      float64 `json:"p999_ms"`
	Refused   int64   `json:"refused"`
	RulesRate float64 `json:"rules_events_per_second,omitempty"`
	PoolRate  float64 `json:"pool_jobs_per_second,omitempty"`
	E2EP50    float64 `json:"end_to_end_p50_ms,omitempty"`
	E2EP99    float64 `json:"end_to_end_p99_ms,omitempty"`
	// Backlog is the largest events backlog at the end of a run's load.
	Backlog int64 `json:"max_events_backlog,omitempty"`
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func summarizeRuns(runs []benchRun, target string) benchSummary {
	var rps, p50, p99, p999, rr, pr, e50, e99 []float64
	s := benchSummary{}
	for _, r := range runs {
		if r.Target != target {
			continue
		}
		s.Runs++
		rps = append(rps, r.RPS)
		p50 = append(p50, r.Latency.P50)
		p99 = append(p99, r.Latency.P99)
		p999 = append(p999, r.Latency.P999)
		for _, n := range r.Refused {
			s.Refused += n
		}
		if p := r.Pipeline; p != nil {
			rr = append(rr, p.RulesRate)
			pr = append(pr, p.PoolRate)
			s.Backlog = max(s.Backlog, p.EventsBacklog)
			if p.EndToEnd != nil {
				e50 = append(e50, p.EndToEnd.P50)
				e99 = append(e99, p.EndToEnd.P99)
			}
		}
	}
	s.RPS, s.P50, s.P99, s.P999 = median(rps), median(p50), median(p99), median(p999)
	s.RulesRate, s.PoolRate, s.E2EP50, s.E2EP99 = median(rr), median(pr), median(e50), median(e99)
	return s
}

// benchTarget is what a run sends webhooks to.
type benchTarget interface {
	// BaseURL is where the webhooks go.
	BaseURL() string
	// Pipeline returns the counters of the rules and the pool, or nil for
	// a target that has none (the floor).
	Pipeline() pipelineProbe
}

// pipelineProbe reads what the rules and the pool have done.
type pipelineProbe interface {
	// Counts returns the events evaluated and the jobs finished so far,
	// and what the batchers stored.
	Counts(ctx context.Context) (sample, error)
	// Backlog returns the events and jobs waiting (-1 when unknown).
	// accepted is how many events the bench got 202 for since since.
	Backlog(ctx context.Context, eventsSince int64, accepted int64) (events, jobs int64, err error)
}

func runBench(ctx context.Context, o benchOptions, progress io.Writer) (*benchReport, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "bot-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	rep := &benchReport{Payload: o.Payload, Connections: o.Connections, Rate: o.Rate, Duration: o.Duration.String(), CPUs: runtime.NumCPU()}
	gen, err := newPayloads(o)
	if err != nil {
		return nil, err
	}

	var bot benchTarget
	var tap *completionTap
	if o.URL == "" {
		b, err := startBenchBot(ctx, o, tmp)
		if err != nil {
			return nil, err
		}
		defer b.stop()
		bot, tap = b, b.tap
		rep.Target = "in-process bot (" + b.describe + ")"
		rep.RSSOf = "this process: bot, NATS, load generator and floor"
	} else {
		bot = &externalBot{base: strings.TrimSuffix(o.URL, "/"), admin: strings.TrimSuffix(o.AdminURL, "/"), token: o.AdminToken}
		rep.Target = o.URL
		if o.PID != 0 {
			rep.RSSOf = "pid " + strconv.Itoa(o.PID)
		}
	}
	var floor *floorServer
	if o.Floor {
		floor, err = startFloor(ctx, filepath.Join(tmp, "floor"), o.Sync)
		if err != nil {
			return nil, err
		}
		defer floor.stop()
	}

	client := &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        o.Connections,
		MaxIdleConnsPerHost: o.Connections,
		MaxConnsPerHost:     o.Connections,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}}
	defer client.CloseIdleConnections()

	for i := 1; i <= o.Runs; i++ {
		if floor != nil {
			r, err := benchRunOnce(ctx, o, client, floor, gen, nil, progress, fmt.Sprintf("floor %d/%d", i, o.Runs), nil)
			if err != nil {
				return nil, err
			}
			r.Run = i
			rep.Runs = append(rep.Runs, r)
		}
		var rec *loadRecorder
		if i == 1 {
			if rec, err = newLoadRecorder(o); err != nil {
				return nil, err
			}
		}
		r, err := benchRunOnce(ctx, o, client, bot, gen, tap, progress, fmt.Sprintf("bot %d/%d", i, o.Runs), rec)
		if cerr := rec.close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
		r.Run = i
		rep.Runs = append(rep.Runs, r)
		if ctx.Err() != nil {
			break
		}
	}
	if o.MemProfile != "" {
		if err := writeAllocProfile(o.MemProfile); err != nil {
			return nil, err
		}
	}
	rep.Bot = summarizeRuns(rep.Runs, "bot")
	if floor != nil {
		s := summarizeRuns(rep.Runs, "floor")
		rep.Floor = &s
		if s.RPS > 0 {
			rep.FloorRatio = rep.Bot.RPS / s.RPS
		}
		if s.P99 > 0 {
			rep.P99Ratio = rep.Bot.P99 / s.P99
		}
		rep.Pairs = floorPairs(rep.Runs)
	}
	if pid := rssPID(o); pid != "" {
		rep.PeakRSS = peakRSS(pid)
	}
	// Last: reading the trace must not count in the profile or the RSS.
	if o.Trace != "" {
		// In this process the load generator marks what it waited for;
		// a bot elsewhere marks what it took to answer.
		category := slowRequestCategory
		if o.URL != "" {
			category = ingest.SlowWebhookCategory
		}
		if rep.Trace, err = summarizeTrace(o.Trace, category); err != nil {
			fmt.Fprintf(progress, "bot bench: the trace is written, but cannot be summarized: %v\n", err)
		}
	}
	return rep, nil
}

// loadRecorder writes the CPU profile and the execution trace of the first
// bot run, from just before its first request to just after its last. With
// --url the trace is the running bot's, fetched from its admin listener.
type loadRecorder struct {
	cpu, trace *os.File
	started    bool
	// remote is the running bot's trace endpoint (with --url), token its
	// bearer token, and fetched the outcome of the fetch started with the
	// load.
	remote   string
	token    string
	fetched  chan error
	fetchErr error
}

// remoteTraceMax bounds a running bot's trace: its admin listener's
// http.write_timeout (default 30s) bounds the answer that carries it.
const remoteTraceMax = 25 * time.Second

// newLoadRecorder creates the files of --cpuprofile and --trace, so that a
// path that cannot be written fails before the run.
func newLoadRecorder(o benchOptions) (*loadRecorder, error) {
	r := &loadRecorder{}
	var err error
	if o.CPUProfile != "" {
		if r.cpu, err = os.Create(o.CPUProfile); err != nil {
			return nil, err
		}
	}
	if o.Trace != "" {
		if r.trace, err = os.Create(o.Trace); err != nil {
			r.close()
			return nil, err
		}
		if o.URL != "" {
			seconds := min(o.Duration, remoteTraceMax).Seconds()
			r.remote = strings.TrimSuffix(o.AdminURL, "/") + "/debug/pprof/trace?seconds=" + strconv.FormatFloat(seconds, 'f', -1, 64)
			r.token = o.AdminToken
		}
	}
	return r, nil
}

// fetchTrace copies the running bot's trace into r.trace.
func (r *loadRecorder) fetchTrace(ctx context.Context) error {
	body, err := adminGet(ctx, r.remote, r.token)
	if err != nil {
		return err
	}
	defer body.Close()
	_, err = io.Copy(r.trace, body)
	return err
}

// start starts recording; a fetch of a running bot's trace ends with ctx.
func (r *loadRecorder) start(ctx context.Context) error {
	if r == nil {
		return nil
	}
	if r.cpu != nil {
		if err := pprof.StartCPUProfile(r.cpu); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
	}
	switch {
	case r.trace != nil && r.remote != "":
		r.fetched = make(chan error, 1)
		go func() { r.fetched <- r.fetchTrace(ctx) }()
	case r.trace != nil:
		if err := trace.Start(r.trace); err != nil {
			if r.cpu != nil {
				pprof.StopCPUProfile()
			}
			return fmt.Errorf("--trace: %w", err)
		}
	}
	r.started = true
	return nil
}

func (r *loadRecorder) stop() {
	if r == nil || !r.started {
		return
	}
	r.started = false
	if r.cpu != nil {
		pprof.StopCPUProfile()
	}
	switch {
	case r.fetched != nil:
		// The bot answers when its trace is over, at the end of the load
		// or earlier.
		if err := <-r.fetched; err != nil {
			r.fetchErr = fmt.Errorf("--trace: %w", err)
		}
	case r.trace != nil:
		trace.Stop()
	}
}

// close stops the recording if it runs and closes the files.
func (r *loadRecorder) close() error {
	if r == nil {
		return nil
	}
	r.stop()
	errs := []error{r.fetchErr}
	for _, f := range []*os.File{r.cpu, r.trace} {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	return errors.Join(errs...)
}

func writeAllocProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// peakRSS reads VmHWM of /proc/<pid>/status in bytes; 0 if it cannot.
func peakRSS(pid string) int64 { return procStatusBytes(pid, "VmHWM:") }

// benchRunOnce sends webhooks to t for o.Duration, then, for a bot, waits for
// the backlog to drain. rec, if not nil, records the load alone.
func benchRunOnce(ctx context.Context, o benchOptions, client *http.Client, t benchTarget, gen *payloads,
	tap *completionTap, progress io.Writer, label string, rec *loadRecorder) (benchRun, error) {
	run := benchRun{Target: "bot"}
	if _, ok := t.(*floorServer); ok {
		run.Target = "floor"
	}
	probe := t.Pipeline()
	var before sample
	if probe != nil {
		var err error
		if before, err = probe.Counts(ctx); err != nil {
			return run, fmt.Errorf("read the bot's counters: %w", err)
		}
	}
	events0, jobs0 := before.events, before.jobs
	if tap != nil {
		tap.reset()
	}
	var gcBefore []metrics.Sample
	if o.URL == "" {
		// A cycle now brings the runtime's CPU figures up to date, and
		// starts every run with only what is live.
		runtime.GC()
		gcBefore = readCollector()
	}
	if err := rec.start(ctx); err != nil {
		return run, err
	}
	var stopRSS func() []rssSample
	if pid := rssPID(o); run.Target == "bot" && pid != "" {
		stopRSS = watchRSS(pid, rssInterval(o.Duration))
	}
	res := drive(ctx, o, client, t.BaseURL(), gen, tap != nil && run.Target == "bot", progress, label)
	if stopRSS != nil {
		// Before the recorder stops: writing a profile or fetching a
		// trace is not the load.
		run.RSS = summarizeRSS(stopRSS(), res.elapsed)
	}
	rec.stop()
	if gcBefore != nil {
		run.Collector = collectorSince(gcBefore)
	}
	run.Requests, run.Accepted = res.requests, res.accepted
	run.Seconds = res.elapsed.Seconds()
	run.RPS = float64(res.accepted) / res.elapsed.Seconds()
	run.Latency = summarize(res.latencies)
	if len(res.refused) > 0 {
		run.Refused = res.refused
	}
	if probe == nil {
		return run, nil
	}

	// The rates during the load, and the backlog it left.
	ctx = context.WithoutCancel(ctx)
	after, err := probe.Counts(ctx)
	if err != nil {
		return run, fmt.Errorf("read the bot's counters: %w", err)
	}
	events1, jobs1 := after.events, after.jobs
	p := &pipelineStats{
		RulesRate: float64(events1-events0) / res.elapsed.Seconds(),
		PoolRate:  float64(jobs1-jobs0) / res.elapsed.Seconds(),
	}
	for _, stream := range slices.Sorted(maps.Keys(after.batches)) {
		p.Batches = append(p.Batches, after.batches[stream].since(before.batches[stream]))
	}
	p.EventsBacklog, p.JobsBacklog, err = probe.Backlog(ctx, events1-events0, res.accepted)
	if err != nil {
		return run, fmt.Errorf("read the backlog: %w", err)
	}
	// Drain: until nothing waits, or --drain is over.
	start := time.Now()
	deadline := start.Add(o.Drain)
	lastJobs, stable := jobs1, 0
	for {
		now, err := probe.Counts(ctx)
		if err != nil {
			return run, fmt.Errorf("read the bot's counters: %w", err)
		}
		ev, jobs := now.events, now.jobs
		be, bj, err := probe.Backlog(ctx, ev-events0, res.accepted)
		if err != nil {
			return run, fmt.Errorf("read the backlog: %w", err)
		}
		if jobs == lastJobs {
			stable++
		} else {
			stable = 0
		}
		lastJobs = jobs
		p.Events, p.Jobs = ev-events0, jobs-jobs0
		// An unknown jobs backlog counts as drained once the jobs count
		// has not moved for a second.
		if be == 0 && (bj == 0 || (bj < 0 && stable >= 5)) {
			// The counts above were read before the backlog: read them again,
			// so that the jobs finished in between are counted.
			now, err := probe.Counts(ctx)
			if err != nil {
				return run, fmt.Errorf("read the bot's counters: %w", err)
			}
			p.Events, p.Jobs = now.events-events0, now.jobs-jobs0
			p.Drained = true
			break
		}
		if time.Now().After(deadline) {
			break
		}
		if progress != nil && isTerminal(progress) {
			fmt.Fprintf(progress, "\r\033[K%-9s draining: %d events, %d jobs waiting", label, be, bj)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if progress != nil && isTerminal(progress) {
		fmt.Fprint(progress, "\r\033[K")
	}
	p.DrainSeconds = time.Since(start).Seconds()
	if tap != nil {
		e2e := tap.latencies(res.acceptedAt)
		if len(e2e) > 0 {
			l := summarize(e2e)
			p.EndToEnd = &l
		}
	}
	run.Pipeline = p
	return run, nil
}

// loadResult is what one run of the load generator saw.
type loadResult struct {
	requests, accepted int64
	elapsed            time.Duration
	latencies          []time.Duration
	refused            map[string]int64
	// acceptedAt is when each accepted event's 202 arrived (since
	// benchEpoch), by eventKey (only when asked for).
	acceptedAt map[uint64]time.Duration
}

// drive sends webhooks for o.Duration over o.Connections connections, as
// fast as they go or at o.Rate. At a fixed rate, latency counts from when a
// request was due, so a stalled server is not hidden by requests that were
// never sent (coordinated omission).
func drive(ctx context.Context, o benchOptions, client *http.Client, base string, gen *payloads, keepAccepted bool,
	progress io.Writer, label string) loadResult {
	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	type worker struct {
		lat        []time.Duration
		refused    map[string]int64
		requests   int64
		accepted   int64
		acceptedAt map[uint64]time.Duration
	}
	workers := make([]*worker, o.Connections)
	var sent, ok atomic.Int64
	var slots chan time.Time
	if o.Rate > 0 {
		slots = make(chan time.Time, o.Connections)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{refused: map[string]int64{}}
		if keepAccepted {
			w.acceptedAt = map[uint64]time.Duration{}
		}
		workers[i] = w
		wg.Go(func() {
			for {
				var due time.Time
				if slots != nil {
					var open bool
					select {
					case due, open = <-slots:
						if !open {
							return
						}
					case <-ctx.Done():
						return
					}
				} else if ctx.Err() != nil {
					return
				}
				path, body := gen.next()
				sentAt := time.Now()
				if due.IsZero() {
					due = sentAt
				}
				status, id, err := postWebhook(context.WithoutCancel(ctx), client, base+path, body)
				now := time.Now()
				if d := now.Sub(due); d > slowRequest && trace.IsEnabled() {
					ingest.MarkSlow(ctx, slowRequestCategory, d)
				}
				w.requests++
				sent.Add(1)
				switch {
				case err != nil:
					w.refused["error"]++
				case status == http.StatusAccepted:
					w.accepted++
					ok.Add(1)
					w.lat = append(w.lat, now.Sub(due))
					if w.acceptedAt != nil && id != "" {
						w.acceptedAt[eventKey(id)] = now.Sub(benchEpoch)
					}
				default:
					w.refused[strconv.Itoa(status)]++
					w.lat = append(w.lat, now.Sub(due))
				}
			}
		})
	}
	if slots != nil {
		wg.Go(func() {
			defer close(slots)
			interval := time.Duration(float64(time.Second) / o.Rate)
			for n := int64(0); ; n++ {
				due := start.Add(time.Duration(n) * interval)
				if d := time.Until(due); d > 0 {
					t := time.NewTimer(d)
					select {
					case <-ctx.Done():
						t.Stop()
						return
					case <-t.C:
					}
				}
				select {
				case slots <- due:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	stopProgress := showProgress(ctx, progress, label, o.Duration, start, &sent, &ok)
	wg.Wait()
	elapsed := time.Since(start)
	stopProgress()

	res := loadResult{elapsed: elapsed, refused: map[string]int64{}}
	if keepAccepted {
		res.acceptedAt = map[uint64]time.Duration{}
	}
	for _, w := range workers {
		res.requests += w.requests
		res.accepted += w.accepted
		res.latencies = append(res.latencies, w.lat...)
		for k, v := range w.refused {
			res.refused[k] += v
		}
		for k, v := range w.acceptedAt {
			res.acceptedAt[k] = v
		}
	}
	return res
}

// postWebhook sends one webhook and reads the whole answer, so that the connection
// is reused.
func postWebhook(ctx context.Context, client *http.Client, url string, body []byte) (status int, eventID string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_, _ = io.Copy(io.Discard, resp.Body)
	if err != nil {
		return 0, "", err
	}
	if resp.StatusCode == http.StatusAccepted {
		var a struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(answer, &a) == nil {
			eventID = a.ID
		}
	}
	return resp.StatusCode, eventID, nil
}

// showProgress draws a progress bar on a terminal, or prints a plain line
// now and then otherwise, until the returned function is called.
func showProgress(ctx context.Context, w io.Writer, label string, total time.Duration, start time.Time, sent, ok *atomic.Int64) (stop func()) {
	if w == nil {
		return func() {}
	}
	term := isTerminal(w)
	every := 250 * time.Millisecond
	if !term {
		every = max(time.Second, total/5)
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		var lastOK int64
		lastAt := start
		for {
			select {
			case <-done:
				if term {
					fmt.Fprint(w, "\r\033[K")
				}
				return
			case now := <-t.C:
				elapsed := now.Sub(start)
				n := ok.Load()
				rate := float64(n-lastOK) / now.Sub(lastAt).Seconds()
				lastOK, lastAt = n, now
				if term {
					const width = 30
					filled := min(width, int(float64(width)*elapsed.Seconds()/total.Seconds()))
					fmt.Fprintf(w, "\r\033[K%-9s [%s%s] %5.1fs/%s  %7.0f req/s  %d accepted  %d refused",
						label, strings.Repeat("#", filled), strings.Repeat(".", width-filled),
						min(elapsed, total).Seconds(), total, rate, n, sent.Load()-n)
				} else {
					fmt.Fprintf(w, "%s: %.0fs of %s, %.0f req/s, %d accepted, %d refused\n",
						label, min(elapsed, total).Seconds(), total, rate, n, sent.Load()-n)
				}
			}
		}
	}()
	_ = ctx
	return func() {
		close(done)
		<-finished
	}
}

func (r *benchReport) print(w io.Writer) {
	mode := "as fast as they go"
	if r.Rate > 0 {
		mode = fmt.Sprintf("at %.0f webhooks/s", r.Rate)
	}
	fmt.Fprintf(w, "bot bench: %s, payload %s, %d connections %s, %s per run, %d CPUs\n\n",
		r.Target, r.Payload, r.Connections, mode, r.Duration, r.CPUs)
	fmt.Fprintf(w, "%-6s %-4s %9s %9s %9s %9s %9s  %s\n", "target", "run", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "requests", "refused")
	for _, run := range r.Runs {
		fmt.Fprintf(w, "%-6s %-4d %9.0f %9.2f %9.2f %9.2f %9d  %s\n", run.Target, run.Run, run.RPS,
			run.Latency.P50, run.Latency.P99, run.Latency.P999, run.Requests, refusedText(run.Refused))
	}
	fmt.Fprintln(w)
	for _, run := range r.Runs {
		if c := run.Collector; c != nil {
			fmt.Fprintf(w, "%s run %d: Go collector (this process): %d cycles (%.1f/s), %.1f%% of the CPUs' capacity, %.0f MB live after the last (%.0f MB that can hold pointers); %.1f KB allocated per request\n",
				run.Target, run.Run, c.Cycles, float64(c.Cycles)/run.Seconds, 100*c.CPUShare, float64(c.LiveHeap)/(1<<20),
				float64(c.ScanHeap)/(1<<20), float64(c.Allocated)/1000/float64(max(run.Requests, 1)))
		}
	}
	for _, run := range r.Runs {
		if run.RSS != nil {
			run.RSS.print(w, run.Run, r.RSSOf)
		}
	}
	for _, run := range r.Runs {
		p := run.Pipeline
		if p == nil {
			continue
		}
		drained := fmt.Sprintf("drained in %.1fs", p.DrainSeconds)
		if !p.Drained {
			drained = fmt.Sprintf("NOT drained after %.0fs", p.DrainSeconds)
		}
		jb := "?"
		if p.JobsBacklog >= 0 {
			jb = strconv.FormatInt(p.JobsBacklog, 10)
		}
		fmt.Fprintf(w, "bot run %d: rules %.0f events/s, pool %.0f jobs/s during the load (ingest %.0f/s); backlog at its end %d events, %s jobs; %s (%d events, %d jobs)\n",
			run.Run, p.RulesRate, p.PoolRate, run.RPS, p.EventsBacklog, jb, drained, p.Events, p.Jobs)
		if len(p.Batches) > 0 {
			fmt.Fprintf(w, "           batches during the load:")
			for i, b := range p.Batches {
				sep := ";"
				if i == len(p.Batches)-1 {
					sep = "\n"
				}
				fmt.Fprintf(w, " %s %d (%.1f messages each), %.0f%% of its messages one by one%s", b.Stream, b.Batches,
					float64(b.Batched)/float64(max(b.Batches, 1)), 100*float64(b.Alone)/float64(max(b.Batched+b.Alone, 1)), sep)
			}
		}
		if e := p.EndToEnd; e != nil {
			fmt.Fprintf(w, "           end to end (202 -> job done): p50 %.1f ms, p99 %.1f ms, p99.9 %.1f ms, max %.1f ms over %d jobs\n",
				e.P50, e.P99, e.P999, e.Max, e.N)
		}
	}
	fmt.Fprintf(w, "\nmedians: bot %.0f req/s, p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms; rules %.0f events/s, pool %.0f jobs/s",
		r.Bot.RPS, r.Bot.P50, r.Bot.P99, r.Bot.P999, r.Bot.RulesRate, r.Bot.PoolRate)
	if r.Bot.E2EP99 > 0 {
		fmt.Fprintf(w, "; end to end p50 %.1f ms, p99 %.1f ms", r.Bot.E2EP50, r.Bot.E2EP99)
	}
	fmt.Fprintln(w)
	if f := r.Floor; f != nil {
		fmt.Fprintf(w, "         floor %.0f req/s, p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms\n", f.RPS, f.P50, f.P99, f.P999)
		fmt.Fprintf(w, "         bot/floor: %.2f of the floor's req/s, %.2fx its p99\n", r.FloorRatio, r.P99Ratio)
		if len(r.Pairs) > 1 {
			rps, p99 := make([]string, len(r.Pairs)), make([]string, len(r.Pairs))
			var rpsRatios, p99Ratios []float64
			for i, p := range r.Pairs {
				rps[i], p99[i] = fmt.Sprintf("%.2f", p.RPSRatio), fmt.Sprintf("%.2fx", p.P99Ratio)
				rpsRatios, p99Ratios = append(rpsRatios, p.RPSRatio), append(p99Ratios, p.P99Ratio)
			}
			fmt.Fprintf(w, "         each bot run against the floor run before it: %s of its req/s (median %.2f); %s its p99 (median %.2fx)\n",
				strings.Join(rps, ", "), median(rpsRatios), strings.Join(p99, ", "), median(p99Ratios))
		}
	}
	if r.PeakRSS > 0 {
		fmt.Fprintf(w, "peak RSS: %.0f MB (%s)\n", float64(r.PeakRSS)/(1<<20), r.RSSOf)
	}
	if r.Trace != nil {
		r.Trace.print(w)
	}
}

func refusedText(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

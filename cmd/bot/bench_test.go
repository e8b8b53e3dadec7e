package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBenchInProcess runs `bot bench` for a second against a bot it starts
// in-process, with the floor, and checks that the report adds up: requests
// were made and accepted, none refused, percentiles in order, every event
// evaluated and every job (two per event) finished, with an end-to-end
// latency for each job.
func TestBenchInProcess(t *testing.T) {
	if trace.IsEnabled() {
		t.Skip("the test is traced already (go test -trace); bot bench --trace cannot trace it again")
	}
	var out, errs bytes.Buffer
	traceFile := filepath.Join(t.TempDir(), "bot.trace")
	err := run(t.Context(), []string{"bench", "--json", "--floor", "--payload", "mix", "--trace", traceFile,
		"--duration", "1s", "--connections", "4", "--drain", "60s", "--rules", "../../rules"}, nil, &out, &errs)
	if err != nil {
		t.Fatalf("bot bench: %v\n%s", err, errs.String())
	}
	var rep benchReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, out.String())
	}
	if len(rep.Runs) != 2 || rep.Runs[0].Target != "floor" || rep.Runs[1].Target != "bot" {
		t.Fatalf("runs: got %+v, want a floor run then a bot run", rep.Runs)
	}
	for _, r := range rep.Runs {
		if r.Requests == 0 || r.Accepted != r.Requests {
			t.Errorf("%s: %d requests, %d accepted; want some, all accepted", r.Target, r.Requests, r.Accepted)
		}
		if len(r.Refused) != 0 {
			t.Errorf("%s: refused %v, want none", r.Target, r.Refused)
		}
		l := r.Latency
		if !(0 < l.P50 && l.P50 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
			t.Errorf("%s: percentiles out of order: %+v", r.Target, l)
		}
		if r.RPS <= 0 {
			t.Errorf("%s: %g req/s", r.Target, r.RPS)
		}
		if c := r.Collector; c == nil || c.LiveHeap == 0 || c.CPUShare < 0 || c.CPUShare > 1 {
			t.Errorf("%s: collector %+v, want the live heap and a share of the CPUs' capacity", r.Target, c)
		}
	}
	if fi, err := os.Stat(traceFile); err != nil || fi.Size() == 0 {
		t.Errorf("execution trace: %v, %v; want a trace of the bot run", fi, err)
	}
	// The trace covers the load alone: a second.
	if tr := rep.Trace; tr == nil || tr.File != traceFile || tr.Seconds < 0.9 || tr.Seconds > 3 ||
		tr.InMarking > tr.Slow || tr.InSync > tr.Slow || tr.Neither > tr.Slow {
		t.Errorf("trace summary %+v: want one of the second of load of the bot run", tr)
	}
	p := rep.Runs[1].Pipeline
	if p == nil {
		t.Fatal("bot run has no pipeline figures")
	}
	accepted := rep.Runs[1].Accepted
	if !p.Drained || p.Events != accepted || p.Jobs != 2*accepted {
		t.Errorf("pipeline: drained %v, %d events, %d jobs; want drained, %d events, %d jobs", p.Drained, p.Events, p.Jobs, accepted, 2*accepted)
	}
	if p.RulesRate <= 0 || p.PoolRate <= 0 {
		t.Errorf("rates: rules %g events/s, pool %g jobs/s; want both above 0", p.RulesRate, p.PoolRate)
	}
	if e := p.EndToEnd; e == nil || int64(e.N) != 2*accepted || !(e.P50 <= e.P99 && e.P99 <= e.Max) {
		t.Errorf("end to end: got %+v, want one latency per job (%d), in order", e, 2*accepted)
	}
	// The bot syncs always: its events and jobs went through the batchers,
	// every event stored before its 202.
	stored := map[string]int64{}
	for _, b := range p.Batches {
		stored[b.Stream] = b.Batched + b.Alone
	}
	if len(p.Batches) != 2 || stored["EVENTS"] < accepted || stored["ACTIONS"] == 0 {
		t.Errorf("batches %+v: want what EVENTS (at least the %d accepted) and ACTIONS stored", p.Batches, accepted)
	}
	if rep.FloorRatio <= 0 || rep.P99Ratio <= 0 {
		t.Errorf("floor ratios: %g, %g; want both above 0", rep.FloorRatio, rep.P99Ratio)
	}
	if len(rep.Pairs) != 1 || rep.Pairs[0].RPSRatio != rep.FloorRatio {
		t.Errorf("pairs %+v: want the one round's, %g of the floor", rep.Pairs, rep.FloorRatio)
	}
	if rep.PeakRSS <= 0 {
		t.Errorf("peak RSS: %d", rep.PeakRSS)
	}
	// The bot run's memory was sampled through its load (a second: every
	// 50 ms), the floor's not.
	if r := rep.Runs[1].RSS; r == nil || r.Samples < 10 || r.Max <= 0 || r.Max > rep.PeakRSS ||
		r.SecondQuarter <= 0 || r.LastQuarter <= 0 || r.SecondQuarter > r.Max || r.LastQuarter > r.Max {
		t.Errorf("bot run's RSS %+v: want samples through its load, none above the peak %d", r, rep.PeakRSS)
	}
	if r := rep.Runs[0].RSS; r != nil {
		t.Errorf("floor run's RSS %+v: want none", r)
	}
}

// The memory samples of a load are summed up by quarter: the first is the
// warm-up, the second and the last say whether it still grows.
func TestSummarizeRSS(t *testing.T) {
	if s := summarizeRSS(nil, time.Minute); s != nil {
		t.Errorf("no samples: %+v, want none", s)
	}
	var samples []rssSample
	// One every 10 s of 80 s, each quarter's highest apart: a warm-up
	// spike in the first, and the third above the second.
	for i, mb := range []int64{50, 140, 100, 120, 110, 135, 130, 115} {
		samples = append(samples, rssSample{at: time.Duration(i)*10*time.Second + 5*time.Second, bytes: mb << 20})
	}
	// On a quarter's first instant: it belongs to that quarter.
	samples = append(samples, rssSample{at: 20 * time.Second, bytes: 121 << 20}, rssSample{at: 60 * time.Second, bytes: 131 << 20})
	got := summarizeRSS(samples, 80*time.Second)
	want := rssStats{Samples: 10, Max: 140 << 20, SecondQuarter: 121 << 20, LastQuarter: 131 << 20}
	if *got != want {
		t.Errorf("got %+v, want %+v", *got, want)
	}
	// A sample taken as the load ended counts in the last quarter.
	got = summarizeRSS(append(samples, rssSample{at: 81 * time.Second, bytes: 150 << 20}), 80*time.Second)
	if got.LastQuarter != 150<<20 {
		t.Errorf("last quarter %d, want the late sample's %d", got.LastQuarter, 150<<20)
	}
	var out bytes.Buffer
	want.print(&out, 2, "pid 42")
	if line := "bot run 2: RSS during the load (pid 42): up to 140 MB; highest in its second quarter 121 MB, in its last 131 MB (10 samples)\n"; out.String() != line {
		t.Errorf("got %q, want %q", out.String(), line)
	}
	// A second a sample in long loads; 20 samples in short ones, down to 10 ms apart.
	for d, want := range map[time.Duration]time.Duration{
		10 * time.Minute: time.Second, 20 * time.Second: time.Second, 10 * time.Second: 500 * time.Millisecond,
		time.Second: 50 * time.Millisecond, 100 * time.Millisecond: 10 * time.Millisecond,
	} {
		if got := rssInterval(d); got != want {
			t.Errorf("a load of %s sampled every %s, want %s", d, got, want)
		}
	}
}

func TestBenchText(t *testing.T) {
	rep := &benchReport{Target: "in-process bot", Payload: "comm100", Connections: 64, Duration: "10s", CPUs: 2,
		Runs: []benchRun{
			{Target: "floor", Run: 1, Requests: 70000, Accepted: 70000, RPS: 7000, Latency: latency{P50: 8, P99: 25, P999: 30}},
			{Target: "bot", Run: 1, Requests: 60000, Accepted: 59990, Seconds: 10, RPS: 5999, Latency: latency{P50: 9, P99: 30, P999: 40},
				Refused:   map[string]int64{"503": 10},
				Collector: &collectorStats{Cycles: 22, CPUShare: 0.071, LiveHeap: 98 << 20, ScanHeap: 40 << 20, Allocated: 3_000_000_000},
				RSS:       &rssStats{Samples: 10, Max: 300 << 20, SecondQuarter: 250 << 20, LastQuarter: 260 << 20},
				Pipeline: &pipelineStats{RulesRate: 5900, PoolRate: 11800, EventsBacklog: 100, JobsBacklog: 40,
					Events: 59990, Jobs: 119980, DrainSeconds: 0.4, Drained: true, EndToEnd: &latency{N: 119980, P50: 12, P99: 50},
					Batches: []batchUse{{Stream: "ACTIONS", Batches: 100, Batched: 8000, Alone: 200}, {Stream: "EVENTS", Batches: 50, Batched: 1500, Alone: 150}}}},
		}}
	rep.RSSOf = "this process"
	rep.Bot = summarizeRuns(rep.Runs, "bot")
	f := summarizeRuns(rep.Runs, "floor")
	rep.Floor = &f
	rep.FloorRatio, rep.P99Ratio = rep.Bot.RPS/f.RPS, rep.Bot.P99/f.P99
	var out bytes.Buffer
	rep.print(&out)
	for _, want := range []string{
		"bot    1         5999      9.00     30.00     40.00     60000  503: 10",
		"rules 5900 events/s, pool 11800 jobs/s during the load (ingest 5999/s); backlog at its end 100 events, 40 jobs; drained in 0.4s",
		"end to end (202 -> job done): p50 12.0 ms, p99 50.0 ms",
		"batches during the load: ACTIONS 100 (80.0 messages each), 2% of its messages one by one; EVENTS 50 (30.0 messages each), 9% of its messages one by one\n",
		"bot/floor: 0.86 of the floor's req/s, 1.20x its p99",
		"bot run 1: Go collector (this process): 22 cycles (2.2/s), 7.1% of the CPUs' capacity, 98 MB live after the last (40 MB that can hold pointers); 50.0 KB allocated per request",
		"bot run 1: RSS during the load (this process): up to 300 MB; highest in its second quarter 250 MB, in its last 260 MB (10 samples)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

// Each bot run is set against the floor run of its own round, since the
// machine's pace drifts between rounds.
func TestFloorPairs(t *testing.T) {
	run := func(target string, n int, rps, p99 float64) benchRun {
		return benchRun{Target: target, Run: n, RPS: rps, Latency: latency{P99: p99}}
	}
	rep := &benchReport{Target: "in-process bot", Payload: "generic", Connections: 64, Duration: "10s", CPUs: 2,
		Runs: []benchRun{
			run("floor", 1, 4000, 20), run("bot", 1, 3000, 30),
			run("floor", 2, 2000, 40), run("bot", 2, 1800, 40),
			run("bot", 3, 2500, 35),                        // its floor run failed to start
			run("floor", 4, 0, 0), run("bot", 4, 2600, 36), // a floor that measured nothing
		}}
	rep.Pairs = floorPairs(rep.Runs)
	want := []floorPair{{Run: 1, RPSRatio: 0.75, P99Ratio: 1.5}, {Run: 2, RPSRatio: 0.9, P99Ratio: 1}}
	if !slices.Equal(rep.Pairs, want) {
		t.Fatalf("pairs %+v, want %+v", rep.Pairs, want)
	}
	rep.Bot = summarizeRuns(rep.Runs, "bot")
	f := summarizeRuns(rep.Runs, "floor")
	rep.Floor = &f
	var out bytes.Buffer
	rep.print(&out)
	line := "each bot run against the floor run before it: 0.75, 0.90 of its req/s (median 0.82); 1.50x, 1.00x its p99 (median 1.25x)"
	if !strings.Contains(out.String(), line) {
		t.Errorf("report lacks %q:\n%s", line, out.String())
	}
	rep.Pairs = rep.Pairs[:1]
	out.Reset()
	rep.print(&out)
	if strings.Contains(out.String(), "each bot run against") {
		t.Errorf("one pair printed as a spread:\n%s", out.String())
	}
}

func TestSummarize(t *testing.T) {
	var ds []time.Duration
	for i := 1000; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	got := summarize(ds)
	want := latency{N: 1000, P50: 500, P99: 990, P999: 999, Max: 1000}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if got := median([]float64{3, 1, 2, 10}); got != 2.5 {
		t.Errorf("median: got %g, want 2.5", got)
	}
}

func TestBenchPayloadsAreUnique(t *testing.T) {
	p, err := newPayloads(benchOptions{Payload: "mix", RulesDir: "../../rules", Comm100Path: "/hooks/comm100", GenericPath: "/hooks/bench"})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for range 10 {
		path, body := p.next()
		var v map[string]any
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("%s: body is not JSON: %v", path, err)
		}
		key := string(body)
		if seen[key] {
			t.Fatalf("%s: body made twice", path)
		}
		seen[key] = true
	}
	for _, example := range []string{"8f14e45f-ceea-4e7a-9b21-3d5c6a7b8c90", "3356721"} {
		got := uniqueLike(example)(1_763_000_000_000_042)
		if len(got) != len(example) && !(example == "3356721" && got == "1763000000000042") {
			t.Errorf("unique id like %s: got %s", example, got)
		}
	}
}

// TestBenchAgainstARunningBot: with --url the bench reads the bot's backlog
// from its metrics, so it knows when every job is done.
func TestBenchAgainstARunningBot(t *testing.T) {
	t.Parallel()
	a := startBot(t)
	var out, errs bytes.Buffer
	traceFile := filepath.Join(t.TempDir(), "bot.trace")
	err := run(t.Context(), []string{"bench", "--json", "--url", "http://" + a.Addr(),
		"--admin-url", "http://" + a.AdminAddr(), "--duration", "1s", "--connections", "2",
		"--drain", "60s", "--rules", "../../rules", "--trace", traceFile,
		"--pid", strconv.Itoa(os.Getpid())}, nil, &out, &errs) // the bot runs in this process
	if err != nil {
		t.Fatalf("bot bench: %v\n%s", err, errs.String())
	}
	var rep benchReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, out.String())
	}
	if len(rep.Runs) != 1 || rep.Runs[0].Pipeline == nil {
		t.Fatalf("runs: got %+v, want one bot run with pipeline figures", rep.Runs)
	}
	r := rep.Runs[0]
	if r.Collector != nil {
		t.Errorf("collector figures %+v for a bot in another process", r.Collector)
	}
	if r.RSS == nil || r.RSS.Samples < 10 || r.RSS.Max <= 0 || rep.PeakRSS < r.RSS.Max || rep.RSSOf != "pid "+strconv.Itoa(os.Getpid()) {
		t.Errorf("memory of --pid: run %+v, peak %d of %q; want samples through the load, under the peak", r.RSS, rep.PeakRSS, rep.RSSOf)
	}
	// The running bot's own trace, fetched from its admin listener.
	if tr := rep.Trace; tr == nil || tr.File != traceFile || tr.Seconds < 0.5 || tr.Seconds > 3 {
		t.Errorf("trace summary %+v: want one of the bot's trace of the second of load", tr)
	}
	p := r.Pipeline
	if r.Accepted == 0 || p.JobsBacklog < 0 || !p.Drained || p.Jobs != 2*r.Accepted {
		t.Errorf("accepted %d; jobs backlog %d, drained %v, %d jobs; want some accepted, a known backlog, drained, two jobs each",
			r.Accepted, p.JobsBacklog, p.Drained, p.Jobs)
	}
}

// TestBenchRefusesFlagsThatDoNotFit: a flag that only means something for
// the in-process bot, or only for a bot elsewhere, is refused with the
// reason, before anything starts.
func TestBenchRefusesFlagsThatDoNotFit(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--url", "http://127.0.0.1:1", "--sim"}, "cannot be used with --url"},
		{[]string{"--pid", "1"}, "--pid: only with --url"},
		{[]string{"--connections", "0"}, "--connections: want at least 1"},
	} {
		var out, errs bytes.Buffer
		err := run(t.Context(), append([]string{"bench"}, tt.args...), nil, &out, &errs)
		if err == nil || !strings.Contains(err.Error()+errs.String(), tt.want) {
			t.Errorf("bot bench %s: err %v, stderr %q; want %q", strings.Join(tt.args, " "), err, errs.String(), tt.want)
		}
	}
}

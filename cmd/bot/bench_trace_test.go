package main

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/trace"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	xtrace "golang.org/x/exp/trace"
)

// TestSummarizeTrace traces two slow requests, one that waited while the
// collector marked and one that waited through nothing, and checks that the
// summary tells them apart.
func TestSummarizeTrace(t *testing.T) {
	if trace.IsEnabled() {
		t.Skip("the test is traced already (go test -trace)")
	}
	// No cycle but the one forced below.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	path := filepath.Join(t.TempDir(), "bench.trace")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := trace.Start(f); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	time.Sleep(30 * time.Millisecond)
	trace.Log(ctx, slowRequestCategory, "15000µs")
	start := time.Now()
	runtime.GC()
	// Timed from 10ms before the collection, since its span ends at the
	// log, which may come late on a busy machine; the first one's span
	// ended before the collection began.
	trace.Log(ctx, slowRequestCategory, strconv.FormatInt((time.Since(start)+10*time.Millisecond).Microseconds(), 10)+"µs")
	trace.Stop()

	s, err := summarizeTrace(path, slowRequestCategory)
	if err != nil {
		t.Fatal(err)
	}
	if s.Slow != 2 || s.InMarking != 1 || s.Neither+s.InSync != 1 {
		t.Errorf("summary %+v: want 2 slow requests, one in the marking, one not", s)
	}
	if !(s.MarkingShare > 0 && s.MarkingShare < 1) || !(s.ChanceMarking > 0 && s.ChanceMarking <= 1) || s.Seconds <= 0 {
		t.Errorf("summary %+v: want shares of the time between 0 and 1", s)
	}
	var out bytes.Buffer
	s.print(&out)
	if !strings.Contains(out.String(), "2 requests slower than 10ms; 50% overlapped the collector's marking") {
		t.Errorf("printed summary: %s", out.String())
	}
}

// TestTraceScan feeds the summary events as the trace reader gives them: a
// mark phase already running when the trace starts, another one begun in it,
// a sync that a new generation of the trace reports again while it lasts,
// a read that is no sync, and four slow requests, one in each.
func TestTraceScan(t *testing.T) {
	ms := func(n int) xtrace.Time { return xtrace.Time(n * int(time.Millisecond)) }
	var events []xtrace.Event
	add := func(ev xtrace.Event, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, ev)
	}
	mark := func(at int, kind xtrace.EventKind) {
		add(xtrace.MakeEvent(xtrace.EventConfig[xtrace.Range]{Time: ms(at), Kind: kind,
			Details: xtrace.Range{Name: markPhase, Scope: xtrace.ResourceID{Kind: xtrace.ResourceNone}}}))
	}
	syscall := func(at int, g xtrace.GoID, from, to xtrace.GoState, funcs ...string) {
		st := xtrace.MakeGoStateTransition(g, from, to)
		var frames []xtrace.StackFrame
		for _, f := range funcs {
			frames = append(frames, xtrace.StackFrame{Func: f})
		}
		stack := xtrace.NoStack
		if len(frames) > 0 {
			stack = xtrace.MakeStack(frames)
		}
		// Entering a call, the goroutine is the one running: its stack
		// is the event's.
		add(xtrace.MakeEvent(xtrace.EventConfig[xtrace.StateTransition]{Time: ms(at), Kind: xtrace.EventStateTransition,
			Goroutine: g, Stack: stack, Details: st}))
	}
	slowReq := func(at, latencyMs int) {
		add(xtrace.MakeEvent(xtrace.EventConfig[xtrace.Log]{Time: ms(at), Kind: xtrace.EventLog, Goroutine: 9,
			Details: xtrace.Log{Category: slowRequestCategory, Message: strconv.Itoa(latencyMs*1000) + "µs"}}))
	}
	mark(1, xtrace.EventRangeActive) // running when the trace starts
	slowReq(15, 10)                  // 5-15 ms: in it
	mark(20, xtrace.EventRangeEnd)
	mark(100, xtrace.EventRangeBegin)
	slowReq(130, 15) // 115-130 ms: in it
	mark(140, xtrace.EventRangeEnd)
	syscall(200, 2, xtrace.GoRunning, xtrace.GoSyscall, "syscall.Fsync", "os.(*File).Sync")
	syscall(210, 2, xtrace.GoSyscall, xtrace.GoSyscall) // a new generation; no stack
	slowReq(225, 12)                                    // 213-225 ms: in the sync
	syscall(230, 2, xtrace.GoSyscall, xtrace.GoRunning)
	syscall(300, 3, xtrace.GoRunning, xtrace.GoSyscall, "syscall.Read")
	slowReq(345, 20) // 325-345 ms: in a read, no sync
	syscall(350, 3, xtrace.GoSyscall, xtrace.GoRunning)
	syscall(401, 4, xtrace.GoRunning, xtrace.GoRunnable)

	sc := traceScan{category: slowRequestCategory}
	for _, ev := range events {
		if err := sc.add(ev); err != nil {
			t.Fatal(err)
		}
	}
	s := sc.summary("x.trace")
	want := traceSummary{File: "x.trace", Seconds: 0.4, Slow: 4, InMarking: 2, InSync: 1, Neither: 1,
		MarkingShare: 59.0 / 400, SyncShare: 30.0 / 400}
	got := *s
	got.ChanceMarking = 0
	if diff := cmp.Diff(want, got, cmpopts.EquateApprox(0, 1e-9)); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
	// By chance: a request of latency L overlaps a mark phase if it ends in
	// one or within L after it: (19+L + 40+L) ms of the 400.
	chance := ((19.0+10+40+10)/400 + (19.0+15+40+15)/400 + (19.0+12+40+12)/400 + (19.0+20+40+20)/400) / 4
	if math.Abs(s.ChanceMarking-chance) > 1e-9 {
		t.Errorf("chance %g, want %g", s.ChanceMarking, chance)
	}
}

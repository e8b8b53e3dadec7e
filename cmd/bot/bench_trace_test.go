package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/trace"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSummarizeTrace traces two slow requests, one that waited while the
// collector marked and one that waited through nothing, and checks that the
// summary tells them apart.
func TestSummarizeTrace(t *testing.T) {
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
	trace.Log(ctx, slowRequestCategory, strconv.FormatInt((time.Since(start)+time.Millisecond).Microseconds(), 10)+"µs")
	trace.Stop()

	s, err := summarizeTrace(path)
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

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/exp/trace"
)

// slowRequest is the latency above which a request is marked in a --trace.
const slowRequest = 10 * time.Millisecond

// slowRequestCategory is the trace log category of those marks; the message
// is the latency in microseconds followed by "µs".
const slowRequestCategory = "slow request"

// longSync is how long a file sync must take to count as one a slow request
// may have waited for.
const longSync = 2 * time.Millisecond

// traceSummary lines the slow requests of a --trace up with what the process
// was doing while they waited: Go's collector marking, or a file sync longer
// than longSync (the embedded NATS server's).
type traceSummary struct {
	File    string  `json:"file"`
	Seconds float64 `json:"seconds"`
	// Slow is how many requests took longer than slowRequest.
	Slow int `json:"slow_requests"`
	// InMarking, InSync: how many of them overlapped a mark phase of the
	// collector, a long sync; Neither: how many overlapped neither.
	InMarking int `json:"in_marking"`
	InSync    int `json:"in_sync"`
	Neither   int `json:"neither"`
	// MarkingShare, SyncShare: the part of the trace's time in mark phases,
	// in long syncs.
	MarkingShare float64 `json:"marking_share"`
	SyncShare    float64 `json:"sync_share"`
	// ChanceMarking is the part of the slow requests that would overlap a
	// mark phase if they fell at random times.
	ChanceMarking float64 `json:"chance_marking"`
}

type span struct{ from, to trace.Time }

func (s span) overlaps(from, to trace.Time) bool { return s.from <= to && s.to >= from }

func overlapsAny(spans []span, from, to trace.Time) bool {
	for _, s := range spans {
		if s.overlaps(from, to) {
			return true
		}
	}
	return false
}

// summarizeTrace reads the execution trace at path.
func summarizeTrace(path string) (*traceSummary, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := trace.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("read trace %s: %w", path, err)
	}
	type slow struct {
		at      trace.Time
		latency time.Duration
	}
	var (
		first, last   trace.Time
		markFrom      trace.Time
		marking, sync []span
		slows         []slow
		inSyscall     = map[trace.GoID]trace.Time{}
		syncing       = map[trace.GoID]bool{}
	)
	for {
		ev, err := r.ReadEvent()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read trace %s: %w", path, err)
		}
		if first == 0 {
			first = ev.Time()
		}
		last = ev.Time()
		switch ev.Kind() {
		case trace.EventRangeBegin:
			if ev.Range().Name == "GC concurrent mark phase" {
				markFrom = ev.Time()
			}
		case trace.EventRangeEnd:
			if ev.Range().Name == "GC concurrent mark phase" && markFrom != 0 {
				marking = append(marking, span{markFrom, ev.Time()})
				markFrom = 0
			}
		case trace.EventStateTransition:
			st := ev.StateTransition()
			if st.Resource.Kind != trace.ResourceGoroutine {
				break
			}
			g := st.Resource.Goroutine()
			from, to := st.Goroutine()
			switch {
			case to == trace.GoSyscall:
				inSyscall[g] = ev.Time()
				syncing[g] = isSync(st.Stack)
			case from == trace.GoSyscall:
				if syncing[g] && ev.Time().Sub(inSyscall[g]) > longSync {
					sync = append(sync, span{inSyscall[g], ev.Time()})
				}
				delete(inSyscall, g)
				delete(syncing, g)
			}
		case trace.EventLog:
			l := ev.Log()
			if l.Category != slowRequestCategory {
				break
			}
			us, err := strconv.ParseInt(strings.TrimSuffix(l.Message, "µs"), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("read trace %s: slow request %q: %w", path, l.Message, err)
			}
			slows = append(slows, slow{ev.Time(), time.Duration(us) * time.Microsecond})
		}
	}
	if markFrom != 0 {
		marking = append(marking, span{markFrom, last})
	}
	total := last.Sub(first)
	s := &traceSummary{File: path, Seconds: total.Seconds(), Slow: len(slows)}
	if total <= 0 {
		return s, nil
	}
	var markTime, syncTime time.Duration
	for _, m := range marking {
		markTime += m.to.Sub(m.from)
	}
	for _, m := range sync {
		syncTime += m.to.Sub(m.from)
	}
	s.MarkingShare = float64(markTime) / float64(total)
	s.SyncShare = float64(syncTime) / float64(total)
	var chance float64
	for _, sl := range slows {
		from := sl.at - trace.Time(sl.latency.Nanoseconds())
		inMark, inSync := overlapsAny(marking, from, sl.at), overlapsAny(sync, from, sl.at)
		if inMark {
			s.InMarking++
		}
		if inSync {
			s.InSync++
		}
		if !inMark && !inSync {
			s.Neither++
		}
		// A span of this length overlaps a mark phase if it ends inside
		// one or up to its length after one began.
		chance += min(1, float64(markTime+time.Duration(len(marking))*sl.latency)/float64(total))
	}
	if len(slows) > 0 {
		s.ChanceMarking = chance / float64(len(slows))
	}
	return s, nil
}

// isSync reports whether a goroutine entered a system call to sync a file.
func isSync(stk trace.Stack) bool {
	for f := range stk.Frames() {
		switch f.Func {
		case "syscall.Fsync", "syscall.Fdatasync", "os.(*File).Sync":
			return true
		}
	}
	return false
}

func (s *traceSummary) print(w io.Writer) {
	pct := func(n int) float64 { return 100 * float64(n) / float64(max(s.Slow, 1)) }
	fmt.Fprintf(w, "trace %s (%.0fs): %d requests slower than %s; %.0f%% overlapped the collector's marking "+
		"(%.1f%% of the time; %.0f%% would by chance), %.0f%% a file sync longer than %s (%.1f%% of the time), %.0f%% neither\n",
		s.File, s.Seconds, s.Slow, slowRequest, pct(s.InMarking), 100*s.MarkingShare, 100*s.ChanceMarking,
		pct(s.InSync), longSync, 100*s.SyncShare, pct(s.Neither))
}

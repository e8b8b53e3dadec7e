package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/exp/trace"

	"github.com/comm100bot/bot/internal/ingest"
)

// slowRequest is the latency above which a request is marked in a --trace:
// the bot's own threshold for its answers.
const slowRequest = ingest.SlowWebhook

// slowRequestCategory is the trace log category of those marks (written with
// ingest.MarkSlow).
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
	// Marks says what was marked slow: requests as the load generator saw
	// them, or webhooks as the bot answered them.
	Marks string `json:"marks"`
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

func overlapsAny(spans []span, from, to trace.Time) bool {
	for _, s := range spans {
		if s.from <= to && s.to >= from {
			return true
		}
	}
	return false
}

// summarizeTrace reads the execution trace at path, in which the slow
// requests are logged under category.
func summarizeTrace(path, category string) (*traceSummary, error) {
	marks := "requests slower than " + slowRequest.String()
	if category == ingest.SlowWebhookCategory {
		marks = "webhooks the bot took longer than " + ingest.SlowWebhook.String() + " to answer"
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := trace.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("read trace %s: %w", path, err)
	}
	sc := traceScan{category: category}
	for {
		ev, err := r.ReadEvent()
		if errors.Is(err, io.EOF) {
			break
		}
		if err == nil {
			err = sc.add(ev)
		}
		if err != nil {
			return nil, fmt.Errorf("read trace %s: %w", path, err)
		}
	}
	s := sc.summary(path)
	s.Marks = marks
	return s, nil
}

// traceScan gathers, event by event, the spans a summary needs.
type traceScan struct {
	category    string // of the slow requests' marks
	first, last trace.Time
	markFrom    trace.Time // 0 outside a mark phase
	marking     []span
	syncs       []span
	slows       []slowMark
	// inSyscall holds, for each goroutine in a system call, when it
	// entered it and its stack then.
	inSyscall map[trace.GoID]syscallEntry
}

type slowMark struct {
	at      trace.Time
	latency time.Duration
}

type syscallEntry struct {
	at    trace.Time
	stack trace.Stack
}

const markPhase = "GC concurrent mark phase"

func (sc *traceScan) add(ev trace.Event) error {
	if sc.first == 0 {
		sc.first = ev.Time()
		sc.inSyscall = map[trace.GoID]syscallEntry{}
	}
	sc.last = ev.Time()
	switch ev.Kind() {
	case trace.EventRangeBegin, trace.EventRangeActive:
		// Active: the phase began before the trace, or before the
		// trace's latest generation.
		if ev.Range().Name == markPhase && sc.markFrom == 0 {
			sc.markFrom = ev.Time()
		}
	case trace.EventRangeEnd:
		if ev.Range().Name == markPhase && sc.markFrom != 0 {
			sc.marking = append(sc.marking, span{sc.markFrom, ev.Time()})
			sc.markFrom = 0
		}
	case trace.EventStateTransition:
		st := ev.StateTransition()
		if st.Resource.Kind != trace.ResourceGoroutine {
			break
		}
		g := st.Resource.Goroutine()
		// A goroutine still in a system call is reported again, from
		// and to GoSyscall, at each of the trace's generations: that is
		// not a new call.
		switch from, to := st.Goroutine(); {
		case to == trace.GoSyscall && from != trace.GoSyscall:
			stk := st.Stack
			if stk == trace.NoStack {
				stk = ev.Stack() // the goroutine's own: it is the one running
			}
			sc.inSyscall[g] = syscallEntry{ev.Time(), stk}
		case from == trace.GoSyscall && to != trace.GoSyscall:
			if e, ok := sc.inSyscall[g]; ok && ev.Time().Sub(e.at) > longSync && isSync(e.stack) {
				sc.syncs = append(sc.syncs, span{e.at, ev.Time()})
			}
			delete(sc.inSyscall, g)
		}
	case trace.EventLog:
		l := ev.Log()
		if l.Category != sc.category {
			break
		}
		d, err := ingest.ParseSlowMark(l.Message)
		if err != nil {
			return err
		}
		sc.slows = append(sc.slows, slowMark{ev.Time(), d})
	}
	return nil
}

func (sc *traceScan) summary(path string) *traceSummary {
	marking := sc.marking
	if sc.markFrom != 0 {
		marking = append(marking, span{sc.markFrom, sc.last})
	}
	total := sc.last.Sub(sc.first)
	s := &traceSummary{File: path, Seconds: total.Seconds(), Slow: len(sc.slows)}
	if total <= 0 {
		return s
	}
	var markTime, syncTime time.Duration
	for _, m := range marking {
		markTime += m.to.Sub(m.from)
	}
	for _, m := range sc.syncs {
		syncTime += m.to.Sub(m.from)
	}
	s.MarkingShare = float64(markTime) / float64(total)
	s.SyncShare = float64(syncTime) / float64(total)
	var chance float64
	for _, sl := range sc.slows {
		from := sl.at - trace.Time(sl.latency.Nanoseconds())
		inMark, inSync := overlapsAny(marking, from, sl.at), overlapsAny(sc.syncs, from, sl.at)
		if inMark {
			s.InMarking++
		}
		if inSync {
			s.InSync++
		}
		if !inMark && !inSync {
			s.Neither++
		}
		chance += float64(endsOverlapping(marking, sl.latency, sc.first, sc.last)) / float64(total)
	}
	if len(sc.slows) > 0 {
		s.ChanceMarking = chance / float64(len(sc.slows))
	}
	return s
}

// endsOverlapping returns how much of [first, last] a request of the given
// latency could end in and overlap one of spans (in time order): the spans,
// each stretched by the latency after its end, merged where they meet.
func endsOverlapping(spans []span, latency time.Duration, first, last trace.Time) time.Duration {
	var sum time.Duration
	var cur span
	open := false
	for _, sp := range spans {
		sp.to = min(sp.to+trace.Time(latency.Nanoseconds()), last)
		sp.from = max(sp.from, first)
		switch {
		case open && sp.from <= cur.to:
			cur.to = max(cur.to, sp.to)
		default:
			if open {
				sum += cur.to.Sub(cur.from)
			}
			cur, open = sp, true
		}
	}
	if open {
		sum += cur.to.Sub(cur.from)
	}
	return sum
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
	if s.Slow == 0 {
		fmt.Fprintf(w, "trace %s (%.0fs): no %s; the collector marked %.1f%% of the time\n",
			s.File, s.Seconds, s.Marks, 100*s.MarkingShare)
		return
	}
	pct := func(n int) float64 { return 100 * float64(n) / float64(s.Slow) }
	fmt.Fprintf(w, "trace %s (%.0fs): %d %s; %.0f%% overlapped the collector's marking "+
		"(%.1f%% of the time; %.0f%% would by chance), %.0f%% a file sync longer than %s (%.1f%% of the time), %.0f%% neither\n",
		s.File, s.Seconds, s.Slow, s.Marks, pct(s.InMarking), 100*s.MarkingShare, 100*s.ChanceMarking,
		pct(s.InSync), longSync, 100*s.SyncShare, pct(s.Neither))
}

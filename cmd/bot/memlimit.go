package main

import (
	"bufio"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
)

// memoryLimitShare is the part of a container's memory limit that the Go
// runtime is told to stay under (runtime/debug.SetMemoryLimit): the rest is
// for what the runtime does not count (thread stacks the OS gives, the
// binary, page tables) and for the room a collection needs.
const memoryLimitShare = 0.9

// memoryTarget is what the bot asks the Go runtime to keep its memory under
// when nothing else bounds it (no GOMEMLIMIT, no container limit) and its
// live data leave room for it: the collector then lets the heap grow by
// less than the live data (Go's default, GOGC=100), down to memoryRoom of
// them. At full load the live heap is about 110 to 150 MB (140 to 150 in
// the in-process bench's runs at 3,500 webhooks/s), most of it NATS's block
// buffers (see the README's Performance), and without a target the process
// grows to 380 MB.
const memoryTarget = 208 << 20

// memoryRoom is the least room the target leaves the collector, as a share
// of the live heap. At full load the live heap reaches what the target
// allows (about 140 MB), and past it this sets the memory: the bot alone for
// 10 minutes peaked at 265 MB with a half (3,217 webhooks/s), 235 MB with
// 0.35 (3,179/s).
const memoryRoom = 0.35

// memoryLimitFor is the soft limit for a live heap of live bytes and
// overhead bytes of the runtime's own outside the heap (stacks, metadata):
// target while that leaves the collector room of memoryRoom of the live
// heap; past that the live heap, that room and the overhead; once the live
// heap is twice what the target allows, more room as it grows, back to all
// of it (Go's default) at four times, so that a large backlog is not
// collected much harder than Go would for a target it cannot meet. The room
// stays at memoryRoom until then because a tighter heap holds less: NATS's
// block buffers and caches are freed by a collection, so with more room the
// live heap grows, and with it the room.
func memoryLimitFor(target int64, live, overhead uint64) int64 {
	l, o := float64(live), float64(overhead)
	room := 1.0
	// a is the live heap for which the target leaves memoryRoom of it as
	// room.
	if a := (float64(target) - o) / (1 + memoryRoom); a > 0 {
		room = min(1, max(memoryRoom, memoryRoom+(1-memoryRoom)*(l-2*a)/(2*a)))
	}
	need := l*(1+room) + o
	if need >= math.MaxInt64 {
		return math.MaxInt64
	}
	return max(target, int64(need))
}

// limitMemory sets the Go runtime's soft memory limit
// (runtime/debug.SetMemoryLimit). Under a container's memory limit it is
// memoryLimitShare of that, so that the collector works harder near it
// instead of the process being killed. Without one it is
// memoryLimitFor(target, ...), computed again after each collection until
// stop is called. GOMEMLIMIT, when set (to a size, or "off"), or a limit
// set before, wins: then it does nothing.
func limitMemory(log *slog.Logger, root string, target int64) (stop func()) {
	if cur := debug.SetMemoryLimit(-1); os.Getenv("GOMEMLIMIT") != "" || cur != math.MaxInt64 {
		log.Debug("Go memory limit left as set", "go_limit_bytes", cur)
		return func() {}
	}
	if limit, ok := cgroupMemoryLimit(root); ok {
		goLimit := int64(float64(limit) * memoryLimitShare)
		debug.SetMemoryLimit(goLimit)
		log.Info("Go memory limit set below the container's (GOMEMLIMIT overrides it)",
			"container_limit_bytes", limit, "go_limit_bytes", goLimit)
		if limit < lowMemoryLimit {
			log.Warn("the container's memory limit is low for the bot: under load the collector will run "+
				"almost without pause, and the process may still be killed",
				"container_limit_bytes", limit, "want_at_least_bytes", lowMemoryLimit)
		}
		return func() {}
	}
	log.Info("Go memory target set (GOMEMLIMIT overrides it)", "target_bytes", target)
	var mem runtimeMemory
	limit := func() int64 {
		live, overhead := mem.read()
		return memoryLimitFor(target, live, overhead)
	}
	set := limit()
	debug.SetMemoryLimit(set)

	cycles := make(chan struct{}, 1)
	done, exited := make(chan struct{}), make(chan struct{})
	afterNextGC(cycles)
	go func() {
		defer close(exited)
		for {
			select {
			case <-done:
				return
			case <-cycles:
			}
			afterNextGC(cycles)
			// Changes under a MiB are not worth the collector's
			// recomputing its goal.
			if l := limit(); l-set >= 1<<20 || set-l >= 1<<20 {
				set = l
				debug.SetMemoryLimit(l)
			}
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}

// afterNextGC sends on ch (if it has room) once a collection has run: a
// sentinel the collector frees, whose cleanup sends.
func afterNextGC(ch chan struct{}) {
	sentinel := new([64]byte) // not small enough for the tiny allocator, which batches objects
	runtime.AddCleanup(sentinel, func(ch chan struct{}) {
		select {
		case ch <- struct{}{}:
		default:
		}
	}, ch)
}

// runtimeMemory reads the live heap and the runtime's memory outside it
// from runtime/metrics.
type runtimeMemory struct {
	samples []metrics.Sample
}

var runtimeMemoryMetrics = []string{
	"/gc/heap/live:bytes",
	"/memory/classes/total:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/released:bytes",
}

// read returns the heap live after the last collection and the bytes the
// runtime holds outside the heap (stacks, metadata). The runtime also
// counts the heap's unused parts against its limit: the room
// memoryLimitFor leaves the collector (memoryRoom of the live heap, or
// more) is less than that by them. Counting them as overhead here was
// measured to let the heap, and the live data with it, grow past the
// target at full load.
func (m *runtimeMemory) read() (live, overhead uint64) {
	if m.samples == nil {
		m.samples = metricSamples(runtimeMemoryMetrics)
	}
	metrics.Read(m.samples)
	var v [6]uint64
	for i, s := range m.samples {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = s.Value.Uint64()
		}
	}
	if heap := v[2] + v[3] + v[4] + v[5]; v[1] > heap {
		overhead = v[1] - heap
	}
	return v[0], overhead
}

// metricSamples returns samples of the runtime/metrics named, to be read.
func metricSamples(names []string) []metrics.Sample {
	s := make([]metrics.Sample, len(names))
	for i, name := range names {
		s[i].Name = name
	}
	return s
}

// lowMemoryLimit is the container limit below which the bot warns: an idle
// bot with its embedded NATS server takes about 30 MB, and one under load
// several times that (see the README's Performance).
const lowMemoryLimit = 128 << 20

// cgroupMemoryLimit returns the memory limit of the cgroup the process runs
// in, read below root ("/" but in tests): cgroup v2's memory.max of the
// process's group or of any group above it, whichever is least, or cgroup
// v1's memory.limit_in_bytes (at the usual mount points). ok is false when
// there is no limit or it cannot be read.
func cgroupMemoryLimit(root string) (limit int64, ok bool) {
	f, err := os.Open(filepath.Join(root, "proc/self/cgroup"))
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// hierarchy-ID:controllers:path; v2 is "0::/path".
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			if l, ok := leastLimit(filepath.Join(root, "sys/fs/cgroup"), parts[2], "memory.max"); ok {
				return l, true
			}
		case containsController(parts[1], "memory"):
			// Mounted at memory, or, with other controllers, at their
			// list (cpuset,memory) with no memory link beside it.
			for _, mount := range []string{"memory", parts[1]} {
				if l, ok := leastLimit(filepath.Join(root, "sys/fs/cgroup", mount), parts[2], "memory.limit_in_bytes"); ok {
					return l, true
				}
			}
		}
	}
	return 0, false
}

func containsController(list, name string) bool {
	for c := range strings.SplitSeq(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// leastLimit reads file in the group at path below mount and in each group
// above it, and returns the least limit found. Inside a container the group
// is often mounted as the root, so the path may not exist below mount: the
// mount's own file counts then.
func leastLimit(mount, path, file string) (int64, bool) {
	var least int64
	found := false
	dir := filepath.Clean("/" + path)
	for {
		if l, ok := readLimit(filepath.Join(mount, dir, file)); ok && (!found || l < least) {
			least, found = l, true
		}
		if dir == "/" {
			return least, found
		}
		dir = filepath.Dir(dir)
	}
}

// readLimit reads a limit file: a number of bytes, or "max" (none). cgroup
// v1 writes a huge number for none.
func readLimit(name string) (int64, bool) {
	b, err := os.ReadFile(name)
	if err != nil {
		return 0, false
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n >= 1<<62 {
		return 0, false
	}
	return n, true
}

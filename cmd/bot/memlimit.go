package main

import (
	"bufio"
	"context"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// memoryLimitShare is the part of a container's memory limit that the Go
// runtime is told to stay under (runtime/debug.SetMemoryLimit): the rest is
// for what the runtime does not count (thread stacks the OS gives, the
// binary, page tables) and for the room a collection needs.
const memoryLimitShare = 0.9

// memoryTarget is what the bot asks the Go runtime to keep its memory under
// when its live data leave room for it: the collector then lets the heap
// grow by less than the live data (Go's default, GOGC=100), down to
// leastHeadroom. At full load the live heap is about 125 MB, most of it
// NATS's block buffers (see the README's Performance), so without a target
// the process would grow to 350 MB and more.
const memoryTarget = 208 << 20

// leastHeadroom is the least room the collector is given above the live
// heap, as a share of it (GOGC=50): when the live data grow past what the
// target allows, the limit grows with them instead of making the collector
// run without pause.
const leastHeadroom = 0.5

// memoryPolicy is the soft limit the bot keeps the Go runtime under.
type memoryPolicy struct {
	// target is memoryTarget; ceiling is memoryLimitShare of the
	// container's limit, math.MaxInt64 without one.
	target, ceiling int64
}

// limit is the soft limit for a live heap of live bytes and overhead bytes
// of the runtime's own (stacks, metadata) outside the heap: the target, or
// more to keep leastHeadroom, but never above the ceiling.
func (m memoryPolicy) limit(live, overhead uint64) int64 {
	need := float64(live)*(1+leastHeadroom) + float64(overhead)
	if need >= float64(m.ceiling) {
		return m.ceiling
	}
	return min(max(m.target, int64(need)), m.ceiling)
}

// limitMemory sets the Go runtime's soft memory limit (runtime/debug's
// SetMemoryLimit) by memoryPolicy, once now and then every interval until
// ctx ends: under the container's limit (memoryLimitShare of it), so that
// the collector works harder near it instead of the process being killed,
// and under target (memoryTarget) as long as the live heap leaves the collector
// leastHeadroom. GOMEMLIMIT, when set (to a size, or "off"), or a limit set
// before, wins: then it does nothing.
func limitMemory(ctx context.Context, log *slog.Logger, root string, target int64, interval time.Duration) {
	if cur := debug.SetMemoryLimit(-1); os.Getenv("GOMEMLIMIT") != "" || cur != math.MaxInt64 {
		log.Debug("Go memory limit left as set", "go_limit_bytes", cur)
		return
	}
	policy := memoryPolicy{target: target, ceiling: math.MaxInt64}
	limit, inContainer := cgroupMemoryLimit(root)
	if !inContainer {
		log.Info("Go memory target set (GOMEMLIMIT overrides it)", "target_bytes", policy.target,
			"least_headroom", leastHeadroom)
	} else {
		policy.ceiling = int64(float64(limit) * memoryLimitShare)
		log.Info("Go memory limit set below the container's (GOMEMLIMIT overrides it)",
			"container_limit_bytes", limit, "go_limit_bytes", policy.ceiling,
			"target_bytes", min(policy.target, policy.ceiling))
		if limit < lowMemoryLimit {
			log.Warn("the container's memory limit is low for the bot: under load the collector will run "+
				"almost without pause, and the process may still be killed",
				"container_limit_bytes", limit, "want_at_least_bytes", lowMemoryLimit)
		}
	}
	var mem runtimeMemory
	debug.SetMemoryLimit(policy.limit(mem.read()))
	if policy.ceiling <= policy.target {
		return // the ceiling is the limit whatever the heap holds
	}
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		set := debug.SetMemoryLimit(-1)
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			// Changes under a MiB are not worth the collector's
			// recomputing its goal.
			if l := policy.limit(mem.read()); l-set >= 1<<20 || set-l >= 1<<20 {
				set = l
				debug.SetMemoryLimit(l)
			}
		}
	}()
}

// runtimeMemory reads the live heap and the runtime's memory outside the
// heap from runtime/metrics.
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
// runtime holds outside the heap.
func (m *runtimeMemory) read() (live, overhead uint64) {
	if m.samples == nil {
		m.samples = make([]metrics.Sample, len(runtimeMemoryMetrics))
		for i, name := range runtimeMemoryMetrics {
			m.samples[i].Name = name
		}
	}
	metrics.Read(m.samples)
	var v [6]uint64
	for i, s := range m.samples {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = s.Value.Uint64()
		}
	}
	heap := v[2] + v[3] + v[4] + v[5]
	if v[1] > heap {
		overhead = v[1] - heap
	}
	return v[0], overhead
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

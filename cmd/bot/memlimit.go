package main

import (
	"bufio"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// memoryLimitShare is the part of a container's memory limit that the Go
// runtime is told to stay under (runtime/debug.SetMemoryLimit): the rest is
// for what the runtime does not count (thread stacks the OS gives, the
// binary, page tables) and for the room a collection needs.
const memoryLimitShare = 0.9

// limitMemoryToContainer tells the Go runtime to collect harder as the
// process nears its container's memory limit (memoryLimitShare of it), so
// that the heap's headroom does not get the process killed. GOMEMLIMIT, when
// set (to a size, or "off"), wins.
func limitMemoryToContainer(log *slog.Logger, root string) {
	if cur := debug.SetMemoryLimit(-1); os.Getenv("GOMEMLIMIT") != "" || cur != math.MaxInt64 {
		log.Debug("Go memory limit left as set", "go_limit_bytes", cur)
		return
	}
	limit, ok := cgroupMemoryLimit(root)
	if !ok {
		return
	}
	goLimit := int64(float64(limit) * memoryLimitShare)
	debug.SetMemoryLimit(goLimit)
	log.Info("Go memory limit set below the container's (GOMEMLIMIT overrides it)",
		"container_limit_bytes", limit, "go_limit_bytes", goLimit)
	if limit < lowMemoryLimit {
		log.Warn("the container's memory limit is low for the bot: under load the collector will run "+
			"almost without pause, and the process may still be killed",
			"container_limit_bytes", limit, "want_at_least_bytes", lowMemoryLimit)
	}
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

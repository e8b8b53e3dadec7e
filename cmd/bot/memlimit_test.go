package main

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"testing"
	"time"
)

// TestCgroupMemoryLimit reads the limits of cgroup v2 and v1 trees as
// containers and hosts lay them out.
func TestCgroupMemoryLimit(t *testing.T) {
	t.Parallel()
	const hybrid = "4:memory:/process_api/6a88\n1:cpu:/\n0::/\n"
	tests := []struct {
		name   string
		files  map[string]string
		want   int64
		wantOK bool
	}{
		{"v2 in a container, its group mounted as the root", map[string]string{
			"proc/self/cgroup":          "0::/\n",
			"sys/fs/cgroup/memory.max":  "536870912\n",
			"sys/fs/cgroup/cpu.max":     "max 100000\n",
			"sys/fs/cgroup/memory.high": "max\n",
		}, 536870912, true},
		{"v2, no limit", map[string]string{
			"proc/self/cgroup":         "0::/\n",
			"sys/fs/cgroup/memory.max": "max\n",
		}, 0, false},
		{"v2 under systemd: the least of the group and its parents", map[string]string{
			"proc/self/cgroup": "0::/system.slice/bot.service\n",
			"sys/fs/cgroup/system.slice/bot.service/memory.max": "max\n",
			"sys/fs/cgroup/system.slice/memory.max":             "1073741824\n",
		}, 1073741824, true},
		{"v2, the group's own limit is the least", map[string]string{
			"proc/self/cgroup":                          "0::/kubepods/pod1/c1\n",
			"sys/fs/cgroup/kubepods/pod1/c1/memory.max": "268435456\n",
			"sys/fs/cgroup/kubepods/memory.max":         "8589934592\n",
		}, 268435456, true},
		{"v1", map[string]string{
			"proc/self/cgroup": "5:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n",
			"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "402653184\n",
		}, 402653184, true},
		{"v1, memory mounted with another controller", map[string]string{
			"proc/self/cgroup": "6:cpuset,memory:/docker/abc\n",
			"sys/fs/cgroup/cpuset,memory/docker/abc/memory.limit_in_bytes": "402653184\n",
		}, 402653184, true},
		{"v1 with no limit (a huge number), v2 without a memory controller", map[string]string{
			"proc/self/cgroup": hybrid,
			"sys/fs/cgroup/memory/process_api/6a88/memory.limit_in_bytes": "9223372036854771712\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes":                  "9223372036854771712\n",
		}, 0, false},
		{"no cgroup file", map[string]string{}, 0, false},
		{"a limit that is not a number", map[string]string{
			"proc/self/cgroup":         "0::/\n",
			"sys/fs/cgroup/memory.max": "lots\n",
		}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for name, body := range tt.files {
				p := filepath.Join(root, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, ok := cgroupMemoryLimit(root)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("cgroupMemoryLimit = %d, %v; want %d, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// noMemoryLimit clears the process's Go memory limit for a test, and sets
// it back after: tests that use it must not be parallel. It skips the test
// when GOMEMLIMIT is set, which would win.
func noMemoryLimit(t *testing.T) {
	t.Helper()
	if os.Getenv("GOMEMLIMIT") != "" {
		t.Skip("GOMEMLIMIT is set for the tests: it would win")
	}
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	debug.SetMemoryLimit(math.MaxInt64)
}

// TestMemoryLimitFollowsTheContainer: inside a 512 MiB container the Go
// runtime is told to stay under 90% of it, and a limit of the runtime's own
// is left alone; a limit too low for the bot is warned of. Not parallel:
// the limit is the process's.
func TestMemoryLimitFollowsTheContainer(t *testing.T) {
	noMemoryLimit(t)
	root := t.TempDir()
	for name, body := range map[string]string{"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": "536870912\n"} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	limitMemory(log, root, memoryTarget)()
	container := 536870912.0
	if got, want := debug.SetMemoryLimit(-1), int64(container*memoryLimitShare); got != want {
		t.Errorf("Go memory limit %d, want %d", got, want)
	}
	if !strings.Contains(logs.String(), "container_limit_bytes=536870912") {
		t.Errorf("no log line of the limit: %q", logs.String())
	}
	if strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("a warning for 512 MiB: %q", logs.String())
	}
	debug.SetMemoryLimit(300 << 20)
	limitMemory(log, root, memoryTarget)()
	if got := debug.SetMemoryLimit(-1); got != 300<<20 {
		t.Errorf("a limit set before was replaced: %d", got)
	}

	// A limit too low for the bot is warned of.
	if err := os.WriteFile(filepath.Join(root, "sys/fs/cgroup/memory.max"), []byte("67108864\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	debug.SetMemoryLimit(math.MaxInt64)
	logs.Reset()
	limitMemory(log, root, memoryTarget)()
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "container_limit_bytes=67108864") {
		t.Errorf("no warning for a 64 MiB limit: %q", logs.String())
	}

	// GOMEMLIMIT wins, "off" too.
	t.Setenv("GOMEMLIMIT", "off")
	debug.SetMemoryLimit(math.MaxInt64)
	limitMemory(log, t.TempDir(), memoryTarget)()
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("GOMEMLIMIT=off: the bot set a limit, %d", got)
	}
}

// TestMemoryLimitLeavesTheCollectorRoom: without a container, the limit is
// the target while the live heap leaves the collector memoryRoom of it as
// room, grows with the live heap beyond, as soon as a collection has seen
// it, and comes back once the heap shrinks. Not parallel: the limit is the
// process's.
func TestMemoryLimitLeavesTheCollectorRoom(t *testing.T) {
	noMemoryLimit(t)
	var logs strings.Builder
	const target = 96 << 20
	runtime.GC()
	stop := limitMemory(slog.New(slog.NewTextHandler(&logs, nil)), t.TempDir(), target)
	t.Cleanup(stop) // runs before the limit is restored
	if !strings.Contains(logs.String(), fmt.Sprintf("target_bytes=%d", target)) {
		t.Errorf("no log line of the target: %q", logs.String())
	}
	waitFor := func(what string, ok func(limit int64) bool) int64 {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			runtime.GC()
			l := debug.SetMemoryLimit(-1)
			if ok(l) {
				return l
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: limit %d MiB", what, l>>20)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// The test binary's own heap is far smaller than the target.
	waitFor("a small heap", func(l int64) bool { return l == target })

	live := make([][]byte, 128) // 128 MiB live: at least memoryRoom of it as room above it
	for i := range live {
		live[i] = make([]byte, 1<<20)
		live[i][0] = 1
	}
	l := waitFor("a live heap past the target", func(l int64) bool { return float64(l) >= 128*(1+memoryRoom)*(1<<20) })
	if l >= 256<<20+64<<20 {
		t.Errorf("limit %d MiB for a live heap of 128 MiB: more room than Go's default", l>>20)
	}
	runtime.KeepAlive(live)
	live = nil
	waitFor("the heap freed", func(l int64) bool { return l < 128<<20 })
}

func TestMemoryLimitFor(t *testing.T) {
	t.Parallel()
	const mib = 1 << 20
	tests := []struct {
		name           string
		live, overhead uint64
		want           float64 // MiB
	}{
		{"idle", 0, 0, 208},
		{"room under the target", 100 * mib, 20 * mib, 208},
		{"memoryRoom of the live heap as room where the target leaves that", 139 * mib, 20 * mib, 208},
		{"memoryRoom as room past the target", 140 * mib, 20 * mib, 209},
		{"memoryRoom as room further past the target", 200 * mib, 20 * mib, 290},
		{"more room past twice the live heap the target allows", 376 * mib, 20 * mib, 613.14},
		{"all of it, as Go's default, just past four times", 558 * mib, 20 * mib, 1136},
		{"and beyond", 1000 * mib, 20 * mib, 2020},
		{"overhead past the target", 10 * mib, 300 * mib, 320},
	}
	for _, tt := range tests {
		if got := float64(memoryLimitFor(208*mib, tt.live, tt.overhead)) / mib; math.Abs(got-tt.want) > 0.01 {
			t.Errorf("%s: memoryLimitFor(208 MiB, %d MiB, %d MiB) = %.2f MiB, want %.2f MiB", tt.name, tt.live/mib, tt.overhead/mib, got, tt.want)
		}
	}
	if got := memoryLimitFor(208*mib, math.MaxUint64/2, 0); got != math.MaxInt64 {
		t.Errorf("a live heap past what int64 holds: memoryLimitFor = %d, want math.MaxInt64", got)
	}
}

// TestRuntimeMemoryMetrics: every metric read exists, as a byte count.
func TestRuntimeMemoryMetrics(t *testing.T) {
	t.Parallel()
	var mem runtimeMemory
	live, overhead := mem.read()
	for _, s := range mem.samples {
		if s.Value.Kind() != metrics.KindUint64 {
			t.Errorf("%s: kind %v, want a uint64", s.Name, s.Value.Kind())
		}
	}
	if live == 0 || overhead == 0 {
		t.Errorf("live %d, overhead %d: want both above 0", live, overhead)
	}
}

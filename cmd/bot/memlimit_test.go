package main

import (
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
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

// TestMemoryLimitFollowsTheContainer: inside a 512 MiB container the Go
// runtime is told to stay under 90% of it, and a limit of the runtime's own
// is left alone. Not parallel: the limit is the process's.
func TestMemoryLimitFollowsTheContainer(t *testing.T) {
	if os.Getenv("GOMEMLIMIT") != "" {
		t.Skip("GOMEMLIMIT is set for the tests: it would win")
	}
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
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
	limitMemoryToContainer(log, root)
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
	limitMemoryToContainer(log, root)
	if got := debug.SetMemoryLimit(-1); got != 300<<20 {
		t.Errorf("a limit set before was replaced: %d", got)
	}

	// A limit too low for the bot is warned of.
	if err := os.WriteFile(filepath.Join(root, "sys/fs/cgroup/memory.max"), []byte("67108864\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	debug.SetMemoryLimit(math.MaxInt64)
	logs.Reset()
	limitMemoryToContainer(log, root)
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "container_limit_bytes=67108864") {
		t.Errorf("no warning for a 64 MiB limit: %q", logs.String())
	}
}

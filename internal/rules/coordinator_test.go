package rules

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/comm100bot/bot/internal/actions"
)

const oneRule = `rules:
  - name: first
    on: comm100.chat.ended
    when: data.chat.rating <= 2
    actions: [{do: log, with: {message: low}}]
`

const twoRules = oneRule + `  - name: second
    on: comm100.chat.started
    actions: [{do: log, with: {message: started}}]
`

// gauges reads the bot_rules_* gauges of reg.
func gauges(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "bot_rules_") {
			out[mf.GetName()] = mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return out
}

func writeRuleFile(t *testing.T, dir, src string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
}

func newTestCoordinator(t *testing.T, dir string) (*Coordinator, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	c, err := NewCoordinator(dir, actions.NewCatalog(), testShapes(), slog.New(slog.NewTextHandler(t.Output(), nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	return c, reg
}

// TestCoordinatorReload: a reload that fails keeps the old set running and
// says so in the gauges; one that succeeds swaps the new set in.
func TestCoordinatorReload(t *testing.T) {
	dir := t.TempDir()
	writeRuleFile(t, dir, oneRule)
	c, reg := newTestCoordinator(t, dir)
	first := c.Engine()
	if n := len(first.Rules()); n != 1 {
		t.Fatalf("loaded %d rules, want 1", n)
	}
	started := gauges(t, reg)
	if started["bot_rules_reload_success"] != 1 || started["bot_rules_loaded"] != 1 || started["bot_rules_reload_timestamp_seconds"] <= 0 {
		t.Errorf("gauges after the first load: %v", started)
	}

	// A broken edit: refused, with the errors; the old set keeps running.
	writeRuleFile(t, dir, strings.Replace(oneRule, "rating <= 2", "ratting <= 2", 1))
	eng, err := c.Reload("test")
	var list ErrorList
	if eng != nil || !errors.As(err, &list) || !strings.Contains(err.Error(), `rules.yaml:4:21: rule "first": when: comm100.chat.ended events have no field "ratting"`) {
		t.Fatalf("broken reload: got %v, %v; want the error list and no engine", eng, err)
	}
	if c.Engine() != first {
		t.Error("a refused reload replaced the running rules")
	}
	want := map[string]float64{
		"bot_rules_reload_success":           0,
		"bot_rules_loaded":                   1,
		"bot_rules_reload_timestamp_seconds": started["bot_rules_reload_timestamp_seconds"],
	}
	if diff := cmp.Diff(want, gauges(t, reg)); diff != "" {
		t.Errorf("gauges after a refused reload (-want +got):\n%s", diff)
	}

	// The fix: swapped in, and the gauges follow.
	c.now = func() time.Time { return time.Unix(1_900_000_000, 500_000_000) }
	writeRuleFile(t, dir, twoRules)
	eng, err = c.Reload("test")
	if err != nil {
		t.Fatal(err)
	}
	if c.Engine() != eng || len(eng.Rules()) != 2 {
		t.Errorf("after the fix: running %d rules, want the 2 just loaded", len(c.Engine().Rules()))
	}
	want = map[string]float64{
		"bot_rules_reload_success":           1,
		"bot_rules_loaded":                   2,
		"bot_rules_reload_timestamp_seconds": 1_900_000_000.5,
	}
	if diff := cmp.Diff(want, gauges(t, reg)); diff != "" {
		t.Errorf("gauges after a good reload (-want +got):\n%s", diff)
	}
}

// TestNewCoordinatorRefusesBrokenRules: with no old set to fall back on,
// broken rules stop the start, and no gauge claims otherwise.
func TestNewCoordinatorRefusesBrokenRules(t *testing.T) {
	dir := t.TempDir()
	writeRuleFile(t, dir, strings.Replace(oneRule, "do: log", "do: lgo", 1))
	reg := prometheus.NewRegistry()
	c, err := NewCoordinator(dir, actions.NewCatalog(), testShapes(), slog.New(slog.DiscardHandler), reg)
	var list ErrorList
	if c != nil || !errors.As(err, &list) || !strings.Contains(err.Error(), `unknown action "lgo"`) {
		t.Fatalf("got %v, %v; want the error list", c, err)
	}
	if got := gauges(t, reg); len(got) != 0 {
		t.Errorf("gauges registered for rules that never ran: %v", got)
	}
}

// TestCoordinatorReloadsAreSerial reloads from many goroutines while
// events read the running set: under -race, any unguarded state shows.
func TestCoordinatorReloadsAreSerial(t *testing.T) {
	dir := t.TempDir()
	writeRuleFile(t, dir, twoRules)
	c, reg := newTestCoordinator(t, dir)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 10 {
				if _, err := c.Reload("test"); err != nil {
					t.Error(err)
				}
				if n := len(c.Engine().Rules()); n != 2 {
					t.Errorf("running %d rules, want 2", n)
				}
			}
		})
	}
	wg.Wait()
	if got := gauges(t, reg)["bot_rules_loaded"]; got != 2 {
		t.Errorf("bot_rules_loaded: got %v, want 2", got)
	}
}

// TestCoordinatorWatch: a change to a rule file reloads the rules.
func TestCoordinatorWatch(t *testing.T) {
	dir := t.TempDir()
	writeRuleFile(t, dir, oneRule)
	c, _ := newTestCoordinator(t, dir)
	done := make(chan error, 1)
	ctx := t.Context()
	go func() { done <- c.Watch(ctx, 10*time.Millisecond) }()
	t.Cleanup(func() {
		if err := <-done; err != nil {
			t.Errorf("watch: %v", err)
		}
	})
	writeUntilReloaded(t, c, dir, "the changed rules")
	select {
	case err := <-done:
		t.Fatalf("watch ended early: %v", err)
	default:
	}
}

// A reload that finds no rule file at all (a deploy between removing the
// old files and copying the new) is refused while rules are running: every
// event meanwhile would match nothing, for good. A file that says
// "rules: []" empties the set on purpose.
func TestCoordinatorRefusesAReloadWithoutRuleFiles(t *testing.T) {
	dir := t.TempDir()
	writeRuleFile(t, dir, oneRule)
	c, _ := newTestCoordinator(t, dir)
	first := c.Engine()
	if err := os.Remove(filepath.Join(dir, "rules.yaml")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Reload("test"); err == nil || !strings.Contains(err.Error(), "no rule file in") {
		t.Fatalf("got %v, want the reload refused", err)
	}
	if c.Engine() != first {
		t.Fatal("the running rules were replaced by none")
	}
	writeRuleFile(t, dir, "rules: []\n")
	eng, err := c.Reload("test")
	if err != nil || len(eng.Rules()) != 0 {
		t.Fatalf("an explicit empty set: %v, %v", eng, err)
	}
}

// A rules dir that is a symbolic link is read where it points, and the
// errors name the files under the link.
func TestLoadDirThroughASymlink(t *testing.T) {
	real, link := linkedRulesDir(t)
	eng, err := LoadDir(link, actions.NewCatalog(), testShapes())
	if err != nil || eng.Files() != 1 || len(eng.Rules()) != 1 {
		t.Fatalf("got %v files, err %v; want the 1 file behind the link", eng, err)
	}
	writeRuleFile(t, real, strings.Replace(oneRule, "rating <= 2", "ratting <= 2", 1))
	if _, err := LoadDir(link, actions.NewCatalog(), testShapes()); err == nil || !strings.Contains(err.Error(), filepath.Join(link, "rules.yaml")+":4:21") {
		t.Errorf("got %v, want the error under the link's path", err)
	}
}

// A folder of rules moved into the rules folder makes no event for its
// files: the watcher reloads on the folder itself. And a mounted volume
// that swaps a link to its new data, as a Kubernetes ConfigMap's update
// does (..data -> ..2026_..., the rule files linked through it), is seen.
func TestCoordinatorWatchSeesFoldersMovedIn(t *testing.T) {
	dir := t.TempDir()
	writeRuleFile(t, dir, oneRule)
	c, _ := newTestCoordinator(t, dir)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Watch(ctx, 10*time.Millisecond) }()
	t.Cleanup(func() { cancel(); <-done })

	team := filepath.Join(t.TempDir(), "team")
	if err := os.Mkdir(team, 0o755); err != nil {
		t.Fatal(err)
	}
	writeRuleFile(t, team, strings.Replace(twoRules, oneRule, "rules:\n", 1))
	// The watcher may start after a first move: move in and out until it
	// sees one.
	deadline := time.Now().Add(10 * time.Second)
	for moved := filepath.Join(dir, "team"); ; {
		if err := os.Rename(team, moved); err != nil {
			t.Fatal(err)
		}
		if waitUntil(300*time.Millisecond, func() bool { return len(c.Engine().Rules()) == 2 }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for the watcher to see the folder moved in")
		}
		if err := os.Rename(moved, team); err != nil {
			t.Fatal(err)
		}
	}
	waitRules := func(want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for len(c.Engine().Rules()) != want {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %d rules; running %d", want, len(c.Engine().Rules()))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitRules(2)

	// The ConfigMap's way: rule files that are links through ..data, which
	// is swapped to a new folder.
	data1, data2 := filepath.Join(dir, "..2026_1"), filepath.Join(dir, "..2026_2")
	for _, d := range []string{data1, data2} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeRuleFile(t, data1, "rules: []\n")
	writeRuleFile(t, data2, strings.Replace(oneRule, "name: first", "name: third", 1))
	if err := os.Symlink("..2026_1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", "rules.yaml"), filepath.Join(dir, "mounted.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..2026_2", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	waitRules(3)
}

// An editor's lock file (Emacs makes .#rules.yaml, a link to nowhere) or a
// hidden copy is not a rule file: it does not break the load.
func TestHiddenFilesAreNotRules(t *testing.T) {
	dir := t.TempDir()
	writeRuleFile(t, dir, oneRule)
	if err := os.Symlink("user@host.1234:1700000000", filepath.Join(dir, ".#rules.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".rules.yaml"), []byte("not: [valid"), 0o644); err != nil {
		t.Fatal(err)
	}
	eng, err := LoadDir(dir, actions.NewCatalog(), testShapes())
	if err != nil || eng.Files() != 1 {
		t.Fatalf("got %v, %v; want the one rule file", eng, err)
	}
}

// A rules dir that is a symbolic link is watched where it points.
func TestCoordinatorWatchThroughASymlink(t *testing.T) {
	real, link := linkedRulesDir(t)
	c, _ := newTestCoordinator(t, link)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Watch(ctx, 10*time.Millisecond) }()
	t.Cleanup(func() { cancel(); <-done })
	writeUntilReloaded(t, c, real, "through the link")
}

// waitUntil polls cond for up to d and reports whether it came to hold.
func waitUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// linkedRulesDir is a folder holding oneRule and a symbolic link to it.
func linkedRulesDir(t *testing.T) (real, link string) {
	t.Helper()
	real = t.TempDir()
	writeRuleFile(t, real, oneRule)
	link = filepath.Join(t.TempDir(), "rules")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	return real, link
}

// writeUntilReloaded writes twoRules into dir until the watcher of c has
// loaded them: the watcher may start after a first write.
func writeUntilReloaded(t *testing.T, c *Coordinator, dir, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(c.Engine().Rules()) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for the watcher to reload %s", what)
		}
		writeRuleFile(t, dir, twoRules)
		time.Sleep(50 * time.Millisecond)
	}
}

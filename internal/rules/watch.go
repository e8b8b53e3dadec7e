package rules

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watch calls reload whenever a rule file under dir is written, created,
// removed or renamed, or a folder is created or moved in, once per burst of
// changes (debounce), until ctx is done. Folders created later are watched
// too.
func watch(ctx context.Context, dir string, debounce time.Duration, log *slog.Logger, reload func()) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	defer w.Close()
	addTree := func(root string) {
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				if path != root && strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				if err := w.Add(path); err != nil {
					log.Warn("cannot watch rules folder", "dir", path, "err", err)
				}
			}
			return nil
		})
	}
	// A dir that is a symbolic link is watched where it points, as it is
	// loaded (see LoadDir).
	if resolved, err := filepath.EvalSymlinks(dir); err == nil {
		dir = resolved
	}
	addTree(dir)
	var timer *time.Timer
	var fire <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			newDir := false
			if ev.Op.Has(fsnotify.Create) {
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
					// A folder moved or copied in, whose rule files made no
					// events of their own; or the new data of a mounted
					// volume (a Kubernetes ConfigMap's update swaps its
					// ..data link to a new folder).
					addTree(ev.Name)
					newDir = true
				}
			}
			if !newDir && !IsRuleFile(ev.Name) && !ev.Op.Has(fsnotify.Remove) && !ev.Op.Has(fsnotify.Rename) {
				continue
			}
			if timer == nil {
				timer = time.NewTimer(debounce)
			} else {
				timer.Reset(debounce)
			}
			fire = timer.C
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			log.Warn("watching rules", "err", err)
		case <-fire:
			fire = nil
			reload()
		}
	}
}

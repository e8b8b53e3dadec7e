package rules

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watch calls reload whenever a rule file under dir is written, created,
// removed or renamed, once per burst of changes (debounce), until ctx is
// done. Folders created later are watched too.
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
			if ev.Op.Has(fsnotify.Create) {
				addTree(ev.Name) // a new folder, or a no-op for a file
			}
			if !IsRuleFile(ev.Name) && !ev.Op.Has(fsnotify.Remove) && !ev.Op.Has(fsnotify.Rename) {
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

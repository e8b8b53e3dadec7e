package rules

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/comm100bot/bot/internal/actions"
	"github.com/comm100bot/bot/internal/event"
)

// FuzzLoad feeds arbitrary rule files to the loader: it must never panic,
// must answer either an engine or an ErrorList whose every entry names the
// file, and a loaded engine must evaluate an event without panicking.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("../../rules/*.yaml")
	more, _ := filepath.Glob("testdata/errors/*/*.y*ml")
	for _, p := range append(seeds, more...) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("rules:\n  - name: x\n    on: a.b\n    actions: [{do: log, with: {message: '{{ data }}'}}]\n"))
	cat, shapes := actions.NewCatalog(), testShapes()
	ev := &event.Event{ID: "e", Source: "comm100", Type: "chat.ended", Data: map[string]any{
		"chat": map[string]any{"rating": int64(1), "id": "1"}, "visitor": map[string]any{"name": "x"},
	}}
	f.Fuzz(func(t *testing.T, src []byte) {
		eng, err := Load([]SourceFile{{Path: "fuzz.yaml", Data: src}}, cat, shapes)
		if err != nil {
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error is not a non-empty ErrorList: %v", err)
			}
			for _, e := range list {
				if e.File != "fuzz.yaml" {
					t.Fatalf("error without its file: %v", e)
				}
			}
			return
		}
		eng.Match(ev, time.Unix(0, 0))
		eng.Explain(ev, time.Unix(0, 0))
	})
}

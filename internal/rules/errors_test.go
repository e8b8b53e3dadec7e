package rules

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/comm100bot/bot/internal/actions"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestLoadErrorsGolden loads each broken rule folder in testdata/errors and
// compares every reported error, with its file:line:col, to want.txt.
func TestLoadErrorsGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/errors/*")
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) == 0 {
		t.Fatal("no golden cases found")
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			_, err := LoadDir(dir, actions.NewCatalog(), testShapes())
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("got %v, want an ErrorList", err)
			}
			got := err.Error() + "\n"
			golden := filepath.Join(dir, "want.txt")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("errors differ (-want +got):\n%s", diff)
			}
		})
	}
}

// want.txt files are not rule files, but make sure they are never loaded as such.
func TestGoldenFilesAreNotRules(t *testing.T) {
	if IsRuleFile("want.txt") {
		t.Fatal("want.txt taken for a rule file")
	}
}

package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/comm100bot/bot/internal/actions"
)

// TestREADMEDocumentsEveryAction keeps the README's action table in step with
// the catalogue: every action has a row, and the row names every parameter
// with its type, in bold when it is required, as "`name` (type".
func TestREADMEDocumentsEveryAction(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "| `") {
			name := strings.Trim(strings.SplitN(line, "|", 3)[1], " `")
			rows[name] = line
		}
	}
	cat := actions.NewCatalog()
	for _, name := range cat.Names() {
		row, ok := rows[name]
		if !ok {
			t.Errorf("README has no row for action %s", name)
			continue
		}
		a, _ := cat.Lookup(name)
		for _, p := range a.Params {
			want := "`" + p.Name + "` (" + p.Type.String()
			if p.Required {
				want = "**`" + p.Name + "`** (" + p.Type.String()
			}
			if !strings.Contains(row, want) {
				t.Errorf("README row of %s does not show param %s as %q", name, p.Name, want+"…)")
			}
		}
	}
}

// TestREADMEStoreDirsAreIgnored: every store directory the README tells
// users to create is in .gitignore, so that a user following it does not
// commit JetStream files.
func TestREADMEStoreDirsAreIgnored(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	ignore, err := os.ReadFile("../../.gitignore")
	if err != nil {
		t.Fatal(err)
	}
	dirs := []string{"./data"} // the default nats.store_dir
	for _, m := range regexp.MustCompile(`--nats\.store_dir[ =](\S+)`).FindAllStringSubmatch(string(readme), -1) {
		dirs = append(dirs, m[1])
	}
	ignored := strings.Split(string(ignore), "\n")
	for _, d := range dirs {
		want := "/" + strings.Trim(strings.TrimPrefix(d, "./"), "/") + "/"
		if !slices.Contains(ignored, want) {
			t.Errorf(".gitignore lacks %s (the README's --nats.store_dir %s)", want, d)
		}
	}
	if len(dirs) < 2 {
		t.Errorf("found no --nats.store_dir in the README: %v", dirs)
	}
}

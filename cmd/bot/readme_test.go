package main

import (
	"os"
	"strings"
	"testing"

	"github.com/comm100bot/bot/internal/actions"
)

// TestREADMEDocumentsEveryAction keeps the README's action table in step with
// the catalogue: every action and every parameter must appear in its row.
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
			if !strings.Contains(row, "`"+p.Name+"`") {
				t.Errorf("README row of %s does not mention param %s", name, p.Name)
			}
		}
	}
}

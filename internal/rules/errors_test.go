package rules

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
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

// A rule file whose tests name event files that are not there (a
// Kubernetes ConfigMap made of the rule folder leaves testdata/ out) loads:
// the rules run. The tests that need the files fail, each naming its
// file:line:col.
func TestMissingTestEventFileFailsOnlyItsTest(t *testing.T) {
	dir := t.TempDir()
	src := `rules:
  - name: chat-log
    on: comm100.chat.ended
    actions:
      - do: log
        with: { message: "ended" }
    tests:
      - name: from a file
        event: testdata/chat_ended.json
        expect: [log]
`
	if err := os.WriteFile(filepath.Join(dir, "r.yaml"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	eng, err := LoadDir(dir, actions.NewCatalog(), testShapes())
	if err != nil {
		t.Fatalf("the rules do not load without their tests' files: %v", err)
	}
	res := eng.RunTests(nil)
	if len(res) != 1 || res[0].Passed() {
		t.Fatalf("got %+v, want the test failed", res)
	}
	want := filepath.Join(dir, "r.yaml") + `:9:16: rule "chat-log": tests.event: open ` + filepath.Join(dir, "testdata/chat_ended.json") + ": no such file or directory"
	if got := res[0].Failures[0]; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// A test whose rule renders params the pool would refuse fails, even when
// the params it names match: the job would go to the DLQ.
func TestRuleTestChecksTheRenderedParams(t *testing.T) {
	dir := t.TempDir()
	src := `rules:
  - name: note
    on: shop.order.shipped
    actions:
      - do: comm100.ticket.note
        with: { ticket_id: "{{ data.ticket }}", text: "shipped" }
    tests:
      - name: a ticket id that is not one
        event: { source: shop, type: order.shipped, data: { ticket: "T-9" } }
        expect: [{ do: comm100.ticket.note, with: { text: shipped } }]
`
	if err := os.WriteFile(filepath.Join(dir, "r.yaml"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	eng, err := LoadDir(dir, actions.NewCatalog(), testShapes())
	if err != nil {
		t.Fatal(err)
	}
	res := eng.RunTests(nil)
	if len(res) != 1 || res[0].Passed() || !strings.Contains(res[0].Failures[0], `action 1 (comm100.ticket.note): the pool would refuse the rendered params: param "ticket_id"`) {
		t.Errorf("got %+v, want the test failed on ticket_id", res)
	}
}

// The tests of a disabled rule run as if it were enabled.
func TestDisabledRuleTestsRun(t *testing.T) {
	eng := mustLoad(t, `
rules:
  - name: off
    enabled: false
    on: shop.order.created
    when: data.total > 100
    actions: [{do: log, with: {message: big}}]
    tests:
      - {name: big, event: {source: shop, type: order.created, data: {total: 200}}, expect: [log]}
      - {name: small, event: {source: shop, type: order.created, data: {total: 2}}, expect: []}
      - {name: another topic, event: {source: shop, type: order.paid, data: {total: 200}}, expect: []}
`)
	for _, r := range eng.RunTests(nil) {
		if !r.Passed() {
			t.Errorf("%s: %v", r.Test.Name, r.Failures)
		}
	}
}

// A rule file that ends in "---" (as templates often write them) holds one
// document: it loads.
func TestTrailingDocumentMarker(t *testing.T) {
	const one = "rules:\n  - name: a\n    on: comm100.chat.ended\n    actions: [{do: log, with: {message: x}}]\n"
	mustLoad(t, one+"---\n")
	// A document after an empty one is not dropped either.
	_, err := Load([]SourceFile{{Path: "r.yaml", Data: []byte(one + "---\n---\n" + strings.Replace(one, "name: a", "name: b", 1))}}, actions.NewCatalog(), testShapes())
	if err == nil || !strings.Contains(err.Error(), "a second YAML document") {
		t.Errorf("got %v, want the third document reported", err)
	}
}

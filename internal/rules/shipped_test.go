package rules_test

import (
	"strings"
	"testing"

	"github.com/comm100bot/bot/internal/actions"
	"github.com/comm100bot/bot/internal/ingest"
	"github.com/comm100bot/bot/internal/rules"
)

// TestShippedRules runs the inline tests of the rules in rules/, as
// `bot rules test rules` does.
func TestShippedRules(t *testing.T) {
	var shapes rules.Shapes
	shapes.Add("comm100", ingest.Comm100Shapes())
	eng, err := rules.LoadDir("../../rules", actions.NewCatalog(), &shapes)
	if err != nil {
		t.Fatal(err)
	}
	results := eng.RunTests(ingest.DecodeComm100)
	if len(results) == 0 {
		t.Fatal("the shipped rules have no tests")
	}
	for _, r := range results {
		t.Run(r.Rule.Name+"/"+r.Test.Name, func(t *testing.T) {
			if !r.Passed() {
				t.Errorf("%s:%d:\n%s", r.Rule.File, r.Test.Line, strings.Join(r.Failures, "\n"))
			}
		})
	}
	for _, r := range eng.Rules() {
		if len(r.Tests) == 0 {
			t.Errorf("shipped rule %q has no inline test", r.Name)
		}
	}
}

package rules

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/comm100bot/bot/internal/actions"
	"github.com/comm100bot/bot/internal/event"
)

// manyRules is a rule file of n rules over n/10 event types: every event type
// has 10 candidate rules whose conditions differ, so one of them matches.
// Their templates are alike, as in real rule sets.
func manyRules(n int) []byte { return genRules(n, false) }

// genRules makes the rules; with unique, every expression differs from every
// other, the worst case for load time.
func genRules(n int, unique bool) []byte {
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := range n {
		suffix := ""
		if unique {
			suffix = fmt.Sprintf(" + '%d'", i)
		}
		fmt.Fprintf(&b, `  - name: rule-%d
    on: shop.type%d.created
    when: data.n == %d && data.customer.tier != "blocked"
    actions:
      - do: log
        with:
          message: "order {{ data.id%s }} for {{ data.customer.name%s }}"
`, i, i%(n/10), i/(n/10), suffix, suffix)
	}
	return []byte(b.String())
}

func BenchmarkLoad10000Rules(b *testing.B) {
	src := manyRules(10000)
	cat, shapes := actions.NewCatalog(), testShapes()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load([]SourceFile{{Path: "many.yaml", Data: src}}, cat, shapes); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoad10000RulesAllUnique(b *testing.B) {
	src := genRules(10000, true)
	cat, shapes := actions.NewCatalog(), testShapes()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load([]SourceFile{{Path: "many.yaml", Data: src}}, cat, shapes); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMatch10Candidates1Match(b *testing.B) {
	eng, err := Load([]SourceFile{{Path: "many.yaml", Data: manyRules(10000)}}, actions.NewCatalog(), testShapes())
	if err != nil {
		b.Fatal(err)
	}
	ev := &event.Event{ID: "e", Source: "shop", Type: "type417.created", Data: map[string]any{
		"n": 3, "id": "A-1", "customer": map[string]any{"name": "Jane", "tier": "gold"},
	}}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		jobs, errs := eng.Match(ev, now)
		if len(jobs) != 1 || len(errs) != 0 {
			b.Fatalf("got %d jobs, %v", len(jobs), errs)
		}
	}
}

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
func manyRules(n int) []byte {
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := range n {
		fmt.Fprintf(&b, `  - name: rule-%d
    on: shop.type%d.created
    when: data.n == %d && data.customer.tier != "blocked"
    actions:
      - do: log
        with:
          message: "order {{ data.id }} for {{ data.customer.name }}"
`, i, i%(n/10), i/(n/10))
	}
	return []byte(b.String())
}

func BenchmarkLoad10000Rules(b *testing.B) {
	src := manyRules(10000)
	cat := actions.NewCatalog()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load([]SourceFile{{Path: "many.yaml", Data: src}}, cat); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMatch10Candidates1Match(b *testing.B) {
	eng, err := Load([]SourceFile{{Path: "many.yaml", Data: manyRules(10000)}}, actions.NewCatalog())
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

package rules

import (
	"strings"
	"testing"

	"github.com/comm100bot/bot/internal/actions"
	"github.com/comm100bot/bot/internal/ingest"
)

// testShapes are the shapes the bot gives the loader: the Comm100
// normalizer's, under the comm100 source.
func testShapes() *Shapes {
	var s Shapes
	s.Add("comm100", ingest.Comm100Shapes())
	return &s
}

type orderShape struct {
	ID    string      `expr:"id"`
	Total int         `expr:"total"`
	Lines []orderLine `expr:"lines"`
}

type orderLine struct {
	SKU string `expr:"sku"`
}

// TestShapesCheckWhatTheyKnow: a rule is type-checked only when every event
// it listens to has a known shape, under the source it was added for.
func TestShapesCheckWhatTheyKnow(t *testing.T) {
	var shapes Shapes
	shapes.Add("shop", map[string]any{"order.created": orderShape{}, "order.paid": orderShape{}})
	tests := []struct {
		name, on, when string
		shapes         *Shapes
		err            string // "" when the rule loads
	}{
		{"known field", "shop.order.created", "data.total > 100", &shapes, ""},
		{"misspelt field", "shop.order.created", "data.totl > 100", &shapes, `shop.order.created events have no field "totl"`},
		{"nested misspelt field", "shop.order.created", `data.lines[0].skew == "x"`, &shapes, `shop.order.created events have no field "skew"`},
		{"wrong type", "shop.order.created", `data.total == "x"`, &shapes, "mismatched types"},
		{"every pattern known", "[shop.order.created, shop.order.paid]", "data.totl > 1", &shapes, `shop.order.created and shop.order.paid events have no field "totl"`},
		{"one pattern unknown", "[shop.order.created, shop.order.refunded]", "data.totl > 1", &shapes, ""},
		{"wildcard", "shop.order.*", "data.totl > 1", &shapes, ""},
		{"another source", "shop-eu.order.created", "data.totl > 1", &shapes, ""},
		{"no shapes", "shop.order.created", "data.totl > 1", nil, ""},
		{"other types keep their message", "shop.order.created", "now().Totl > 1", &shapes, "type time.Time has no field Totl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "rules:\n  - name: r\n    on: " + tt.on + "\n    when: '" + tt.when + "'\n    actions: [{do: log, with: {message: x}}]\n"
			_, err := Load([]SourceFile{{Path: "r.yaml", Data: []byte(src)}}, actions.NewCatalog(), tt.shapes)
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("got %v, want the rule to load", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("got %v, want an error containing %q", err, tt.err)
			}
		})
	}
}

// TestShapesFollowTheSourceName: the same shapes added under a second
// source name check that source's rules too.
func TestShapesFollowTheSourceName(t *testing.T) {
	shapes := testShapes()
	shapes.Add("comm100-eu", ingest.Comm100Shapes())
	src := "rules:\n  - name: r\n    on: comm100-eu.chat.ended\n    when: data.chat.ratting < 2\n    actions: [{do: log, with: {message: x}}]\n"
	_, err := Load([]SourceFile{{Path: "r.yaml", Data: []byte(src)}}, actions.NewCatalog(), shapes)
	if err == nil || !strings.Contains(err.Error(), `r.yaml:4:21: rule "r": when: comm100-eu.chat.ended events have no field "ratting"`) {
		t.Errorf("got %v, want the misspelt field reported", err)
	}
}

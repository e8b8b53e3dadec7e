package rules

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/comm100bot/bot/internal/actions"
	"github.com/comm100bot/bot/internal/event"
)

func mustLoad(t testing.TB, src string) *Engine {
	t.Helper()
	eng, err := Load([]SourceFile{{Path: "test.yaml", Data: []byte(src)}}, actions.NewCatalog(), testShapes())
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

func TestPatternIndex(t *testing.T) {
	tests := []struct {
		pattern, topic string
		want           bool
	}{
		{"comm100.chat.ended", "comm100.chat.ended", true},
		{"comm100.chat.ended", "comm100.chat.started", false},
		{"comm100.chat.*", "comm100.chat.ended", true},
		{"comm100.chat.*", "comm100.chat.ended.extra", false},
		{"comm100.*.ended", "comm100.chat.ended", true},
		{"comm100.>", "comm100.chat.ended", true},
		{"comm100.>", "comm100", false},
		{"*.chat.ended", "shop.chat.ended", true},
		{">", "anything.at.all", true},
		{"shop.order.created", "comm100.order.created", false},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+" "+tt.topic, func(t *testing.T) {
			if got := matchPattern(tt.pattern, tt.topic); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMatchReturnsCandidatesInRuleOrderOnce(t *testing.T) {
	eng := mustLoad(t, `
rules:
  - name: a
    on: [comm100.chat.ended, comm100.chat.*, comm100.>]
    actions: [{do: log, with: {message: a}}]
  - name: b
    on: comm100.chat.started
    actions: [{do: log, with: {message: b}}]
  - name: c
    on: comm100.chat.ended
    enabled: false
    actions: [{do: log, with: {message: c}}]
  - name: d
    on: "*.chat.ended"
    actions: [{do: log, with: {message: d}}]
`)
	jobs, errs := eng.Match(&event.Event{ID: "e1", Source: "comm100", Type: "chat.ended"}, time.Now())
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	var got []string
	for _, j := range jobs {
		got = append(got, j.Rule+"/"+j.Params["message"].(string)+"/"+j.ID)
	}
	want := []string{"a/a/e1/a/0", "d/d/e1/d/0"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("jobs (-want +got):\n%s", diff)
	}
}

func TestTemplates(t *testing.T) {
	eng := mustLoad(t, `
rules:
  - name: t
    on: shop.order.created
    actions:
      - do: log
        key: "order-{{ data.id }}"
        after: 90s
        priority: high
        with:
          message: "Order {{ data.id }} for {{ upper(data.customer) }}: {{ data.lines }}"
          level: "{{ data.missing ?? 'info' }}"
      - do: comm100.ticket.create
        if: data.total > 100
        with:
          subject: "{{ data.id }}"
          custom_fields:
            total: "{{ data.total }}"
            paid: "{{ data.paid }}"
            note: "total {{ data.total }}"
            fallback: "{{ default(data.nothing, 'n/a') }}"
          tag_ids: ["{{ data.tag }}", 0f8fad5b-d9cb-469f-a165-70867728950e]
      - do: log
        if: data.total > 1000
        with: { message: big }
`)
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	ev := &event.Event{ID: "o1", Source: "shop", Type: "order.created", Data: map[string]any{
		"id": "A-1", "customer": "jane", "lines": []any{"2 x mug", "1 x tea"},
		"total": 120.5, "paid": true, "tag": "t1",
	}}
	jobs, errs := eng.Match(ev, now)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if len(jobs) != 2 {
		t.Fatalf("got %d jobs, want 2 (the third action's if is false)", len(jobs))
	}
	if diff := cmp.Diff(map[string]any{
		"message": "Order A-1 for JANE: 2 x mug\n1 x tea",
		"level":   "info",
	}, jobs[0].Params); diff != "" {
		t.Errorf("log params (-want +got):\n%s", diff)
	}
	if jobs[0].Key != "order-A-1" || !jobs[0].RunAt.Equal(now.Add(90*time.Second)) || jobs[0].Priority != "high" {
		t.Errorf("got key %q run_at %s priority %q", jobs[0].Key, jobs[0].RunAt, jobs[0].Priority)
	}
	want := map[string]any{
		"subject": "A-1",
		"custom_fields": map[string]any{
			"total": 120.5, "paid": true, "note": "total 120.5", "fallback": "n/a",
		},
		"tag_ids": []any{"t1", "0f8fad5b-d9cb-469f-a165-70867728950e"},
	}
	if diff := cmp.Diff(want, jobs[1].Params); diff != "" {
		t.Errorf("ticket params (-want +got):\n%s", diff)
	}
}

func TestEvaluationErrorSkipsOnlyThatRule(t *testing.T) {
	eng := mustLoad(t, `
rules:
  - name: bad
    on: shop.order.created
    when: data.total > 100
    actions: [{do: log, with: {message: bad}}]
  - name: good
    on: shop.order.created
    actions: [{do: log, with: {message: good}}]
`)
	jobs, errs := eng.Match(&event.Event{ID: "x", Source: "shop", Type: "order.created",
		Data: map[string]any{"total": "not a number"}}, time.Now())
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), `rule "bad"`) {
		t.Errorf("got errors %v, want one about rule bad", errs)
	}
	if len(jobs) != 1 || jobs[0].Rule != "good" {
		t.Errorf("got jobs %+v, want the good rule's", jobs)
	}
}

func TestExpressionLimits(t *testing.T) {
	huge := "data.a == 1" + strings.Repeat(" || data.a == 1", 400)
	_, err := Load([]SourceFile{{Path: "big.yaml", Data: []byte(fmt.Sprintf(`
rules:
  - name: big
    on: shop.x
    when: %s
    actions: [{do: log, with: {message: x}}]
`, huge))}}, actions.NewCatalog(), nil)
	if err == nil || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("got %v, want an error about the size limit", err)
	}
	// Memory: an expression that builds a huge value fails at run time
	// instead of eating the process.
	eng := mustLoad(t, `
rules:
  - name: hungry
    on: shop.x
    when: len(map(1..1000000, {# * 2})) > 0
    actions: [{do: log, with: {message: x}}]
`)
	_, errs := eng.Match(&event.Event{ID: "x", Source: "shop", Type: "x"}, time.Now())
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "memory budget") {
		t.Fatalf("got %v, want a memory budget error", errs)
	}
}

// A field of an object the event does not have is nil, as a missing field
// is, in conditions and templates alike, not an error that parks the event.
func TestMissingObjectsAreNil(t *testing.T) {
	eng := mustLoad(t, `
rules:
  - name: shipped
    on: shop.order.shipped
    when: default(data.order.ticket.id, "") == "" && data.order?.id == nil && data["order"].id == nil
    actions: [{do: log, with: {message: "order {{ data.order.id }} to {{ data.order.address.city }}"}}]
`)
	jobs, errs := eng.Match(&event.Event{ID: "x", Source: "shop", Type: "order.shipped", Data: map[string]any{}}, time.Now())
	if len(errs) != 0 || len(jobs) != 1 {
		t.Fatalf("got jobs %+v, errors %v; want the rule's job", jobs, errs)
	}
	if got := jobs[0].Params["message"]; got != "order  to " {
		t.Errorf("message: got %q", got)
	}
	jobs, errs = eng.Match(&event.Event{ID: "y", Source: "shop", Type: "order.shipped",
		Data: map[string]any{"order": map[string]any{"id": 7, "ticket": map[string]any{"id": "1042"}}}}, time.Now())
	if len(errs) != 0 || len(jobs) != 0 {
		t.Errorf("an order with a ticket: got jobs %+v, errors %v; want none", jobs, errs)
	}
}

// A key that is one whole {{ }} renders as text does: nil as nothing, a
// time in RFC 3339, not Go's "<nil>" or its time format.
func TestKeyRendersAsText(t *testing.T) {
	eng := mustLoad(t, `
rules:
  - name: later
    on: shop.order.created
    actions:
      - {do: log, after: 1m, key: "{{ data.missing }}", with: {message: a}}
      - {do: log, after: 1m, key: "{{ time }}", with: {message: b}}
`)
	at := time.Date(2026, 3, 9, 12, 0, 0, 0, time.UTC)
	jobs, errs := eng.Match(&event.Event{ID: "x", Source: "shop", Type: "order.created", Time: at, Data: map[string]any{}}, at)
	if len(errs) != 0 || len(jobs) != 2 {
		t.Fatalf("got %+v, %v", jobs, errs)
	}
	if jobs[0].Key != "" || jobs[1].Key != "2026-03-09T12:00:00Z" {
		t.Errorf("keys: got %q and %q", jobs[0].Key, jobs[1].Key)
	}
}

// $env's fields are the rule's names: a misspelt one is an error at load,
// not a nil.
func TestEnvFieldsAreChecked(t *testing.T) {
	_, err := Load([]SourceFile{{Path: "t.yaml", Data: []byte("rules:\n  - name: a\n    on: shop.x\n    when: $env.subjct == \"\"\n    actions: [{do: log, with: {message: x}}]\n")}},
		actions.NewCatalog(), testShapes())
	if err == nil || !strings.Contains(err.Error(), "subjct") {
		t.Errorf("got %v, want an error naming subjct", err)
	}
}

package actions

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/comm100bot/bot/internal/job"
)

func TestRedactParams(t *testing.T) {
	in := map[string]any{
		"url":     "https://crm.example/hook",
		"headers": map[string]any{"Authorization": "Bearer s3cret", "X-Api-Key": "k", "Accept": "application/json"},
		"body":    []any{map[string]any{"password": "p", "name": "n"}},
		"token":   "t",
	}
	want := map[string]any{
		"url":     "https://crm.example/hook",
		"headers": map[string]any{"Authorization": "<redacted>", "X-Api-Key": "<redacted>", "Accept": "application/json"},
		"body":    []any{map[string]any{"password": "<redacted>", "name": "n"}},
		"token":   "<redacted>",
	}
	if diff := cmp.Diff(want, redactParams(in)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if in["token"] != "t" {
		t.Error("the job's own params were changed; a redrive needs them")
	}
}

func TestCompletedEvent(t *testing.T) {
	at := time.Date(2026, 3, 9, 12, 0, 0, 0, time.FixedZone("x", 3600))
	j := &job.Job{ID: "e/r/0", EventID: "e", Rule: "r", Action: "http.request", Key: "k",
		Params: map[string]any{"url": "https://x", "headers": map[string]any{"Cookie": "c"}}}
	ev := completedEvent(j, nil, at)
	if err := ev.Validate(); err != nil {
		t.Fatal(err)
	}
	if ev.ID != "action.completed:e/r/0" || ev.Source != "bot" || ev.Type != "action.completed" || !ev.Time.Equal(at) || ev.Time.Location() != time.UTC {
		t.Errorf("got %+v", ev)
	}
	params := ev.Data["params"].(map[string]any)
	if params["headers"].(map[string]any)["Cookie"] != "<redacted>" {
		t.Errorf("params not redacted: %v", params)
	}
	if res, ok := ev.Data["result"].(map[string]any); !ok || res == nil {
		t.Errorf("result: got %#v, want an empty object", ev.Data["result"])
	}
}

func TestOutageStreak(t *testing.T) {
	var o outage
	if s := o.streak("a"); s != (Streak{}) {
		t.Fatalf("zero value: got %+v", s)
	}
	o.fail("a")
	o.fail("a")
	if s := o.streak("a"); s != (Streak{Failures: 2}) {
		t.Errorf("one job failing: got %+v, want no others", s)
	}
	if s := o.streak("b"); s != (Streak{Failures: 2, Others: true}) {
		t.Errorf("as seen by another job: got %+v", s)
	}
	o.fail("b")
	if s := o.streak("a"); !s.Others || s.Failures != 3 {
		t.Errorf("two jobs failing: got %+v", s)
	}
	o.ok()
	if s := o.streak("a"); s != (Streak{}) {
		t.Errorf("after an answer: got %+v", s)
	}
}

package job

import (
	"encoding/json"
	"testing"
	"time"
)

func TestDue(t *testing.T) {
	made := time.Date(2026, 3, 9, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		runAt time.Time
		want  time.Time
	}{
		{"due at once", time.Time{}, made},
		{"delayed", made.Add(30 * time.Minute), made.Add(30 * time.Minute)},
		{"run at before made", made.Add(-time.Minute), made},
	}
	for _, tt := range tests {
		j := Job{Created: made, RunAt: tt.runAt}
		if got := j.Due(); !got.Equal(tt.want) {
			t.Errorf("%s: got %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestRank(t *testing.T) {
	for p, want := range map[string]int{PriorityHigh: 0, "HIGH": 0, PriorityNormal: 1, "": 1, "urgent": 1, PriorityLow: 2} {
		if got := Rank(p); got != want {
			t.Errorf("Rank(%q): got %d, want %d", p, got, want)
		}
	}
}

// TestJobKeepsNumbersExact: a job travels as JSON; an id above 2^53 must
// come back as it went.
func TestJobKeepsNumbersExact(t *testing.T) {
	in := Job{ID: ID("e1", "r", 2), Action: "comm100.ticket.note", Params: map[string]any{"ticket_id": int64(9007199254740993)}}
	data, err := json.Marshal(&in)
	if err != nil {
		t.Fatal(err)
	}
	var out Job
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	if out.ID != "e1/r/2" || out.Params["ticket_id"] != int64(9007199254740993) {
		t.Errorf("got id %q params %#v", out.ID, out.Params)
	}
	if out.RunSubject() != "actions.run.comm100.ticket.note" {
		t.Errorf("run subject: got %q", out.RunSubject())
	}
	if err := json.Unmarshal([]byte(`{"id":"x","params":[1]}`), &out); err == nil {
		t.Error("params that are not an object were accepted")
	}
}

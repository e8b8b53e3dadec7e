package event

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestEventRoundTripKeepsNumbersExact(t *testing.T) {
	in := Event{ID: "e1", Source: "shop", Type: "order.created", Time: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC),
		Data: map[string]any{
			"id":    int64(1200000),
			"big":   int64(9007199254740993), // above 2^53: a float64 would change it
			"total": 12.5,
			"lines": []any{int64(1), "x", map[string]any{"qty": int64(3)}},
			"huge":  "1e400",
		}}
	b, err := json.Marshal(&in)
	if err != nil {
		t.Fatal(err)
	}
	var out Event
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	var huge Event
	if err := json.Unmarshal([]byte(`{"id":"x","data":{"n":1e400}}`), &huge); err != nil {
		t.Fatal(err)
	}
	if huge.Data["n"] != "1e400" {
		t.Errorf("out-of-range number: got %#v, want its digits", huge.Data["n"])
	}
	if err := json.Unmarshal([]byte(`{"id":"x","data":[1]}`), &huge); err == nil {
		t.Error("data that is not an object: want an error")
	}
}

package job

import (
	"encoding/json"
	"reflect"
	"strings"
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
	if got := Rank(PriorityLow); got != Ranks-1 {
		t.Errorf("the last rank is %d, Ranks says %d", got, Ranks-1)
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
	if want := "actions.run.comm100.ticket.note." + Token("e1/r/2"); out.RunSubject() != want {
		t.Errorf("run subject: got %q", out.RunSubject())
	}
	if err := json.Unmarshal([]byte(`{"id":"x","params":[1]}`), &out); err == nil {
		t.Error("params that are not an object were accepted")
	}
}

// TestEncodeIsJSONMarshal: Encode gives byte for byte what json.Marshal
// gives, and Decode reads it back as encoding/json does.
func TestEncodeIsJSONMarshal(t *testing.T) {
	made := time.Date(2026, 3, 9, 12, 0, 0, 123456789, time.UTC)
	jobs := []Job{
		{},
		{ID: ID("chat.ended:1", "low-rating", 0), EventID: "chat.ended:1", Rule: "low-rating", Action: "comm100.ticket.create",
			Params: map[string]any{"subject": "Low <rating> & \"more\"\u2028", "priority": "high", "n": int64(9007199254740993),
				"f": 1.5, "list": []any{"a", int64(2), nil, true}, "nested": map[string]any{"b": "2", "a": "1"}},
			Created: made},
		{ID: "e/r/1", Action: "comm100.ticket.note", Key: "follow-up-1", RunAt: made.Add(30 * time.Minute),
			Priority: PriorityLow, DryRun: true, Emit: true, Redrives: "e1/r/0", Created: made.In(time.FixedZone("PST", -8*3600)), Index: 7,
			Params: map[string]any{}},
	}
	for _, j := range jobs {
		want, err := json.Marshal(&j)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Encode(&j)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("Encode:\n got %s\nwant %s", got, want)
		}
		var slow Job
		if err := slow.slowUnmarshal(want); err != nil {
			t.Fatal(err)
		}
		fast := new(Job)
		if !fast.fastUnmarshal(want) {
			t.Errorf("the fast decoder gave up on %s", want)
		}
		if !reflect.DeepEqual(fast, &slow) {
			t.Errorf("decoded:\n fast %#v\n slow %#v", fast, slow)
		}
	}
}

// TestDecodeRefusesWhatEncodingJSONRefuses: a field given twice, the first
// of the wrong type, and a time written with escapes are errors, as in
// encoding/json, though a map of the fields would hide the first and the
// unescaped time would parse.
func TestDecodeRefusesWhatEncodingJSONRefuses(t *testing.T) {
	for _, in := range []string{
		`{"id":"x","index":"1","index":1,"created":"2026-03-09T12:00:00Z"}`,
		`{"id":5,"id":"x","created":"2026-03-09T12:00:00Z"}`,
		`{"id":"x","dry_run":"yes","dry_run":true,"created":"2026-03-09T12:00:00Z"}`,
		`{"id":"x","created":"junk","created":"2026-03-09T12:00:00Z"}`,
		`{"id":"x","created":"2026-03-09T12:00:00\u005A"}`,
		`{"id":"x","run_at":"2026-03-09T12:00:00\u005A","created":"2026-03-09T12:00:00Z"}`,
	} {
		if j, err := Decode([]byte(in)); err == nil {
			t.Errorf("%s: decoded as %+v", in, j)
		}
	}
	// Escapes elsewhere are fine: json.Marshal writes <, > and & so.
	j, err := Decode([]byte(`{"id":"\u003cx\u003e","rule":"a\u0026b","created":"2026-03-09T12:00:00Z"}`))
	if err != nil || j.ID != "<x>" || j.Rule != "a&b" {
		t.Errorf("got %+v, %v", j, err)
	}
}

// FuzzDecode: whatever the input, the one-pass decoder gives what
// encoding/json gives, or gives up.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"id":"e/r/0","event_id":"e","rule":"r","index":0,"action":"log","params":{"message":"hi","n":12},"created":"2026-03-09T12:00:00Z"}`))
	f.Add([]byte(`{"id":"x","params":[1]}`))
	f.Add([]byte(`{"id":"x","index":1.0,"run_at":"2026-03-09T12:00:00.5+01:00","emit":true,"dry_run":false}`))
	f.Add([]byte(`{"ID":"x","index":99999999999999999999,"params":null,"key":null}`))
	f.Add([]byte(`{"index":"1","index":1}`))
	f.Add([]byte(`{"id":"x","created":"2026-03-09T12:00:00\u005A"}`))
	f.Add([]byte(`{"id":"\u003cx\u003e","rule":"a\u0026b","created":"2026-03-09T12:00:00Z"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fast := new(Job)
		if !fast.fastUnmarshal(data) {
			return
		}
		var slow Job
		if err := slow.slowUnmarshal(data); err != nil {
			t.Fatalf("fast decoded %q, encoding/json refused it: %v", data, err)
		}
		if !reflect.DeepEqual(fast, &slow) {
			t.Fatalf("%q:\n fast %#v\n slow %#v", data, fast, slow)
		}
	})
}

// BenchmarkDecode is the pool's cost of reading a job: a rendered
// comm100.ticket.create of the shipped low-rating rule.
func BenchmarkDecode(b *testing.B) {
	transcript := strings.Repeat("[08:51:02] Alex: I'm sorry to hear that. Could you send a photo? ", 8)
	j := Job{ID: ID("chat.ended:8f14e45f-ceea-4e7a-9b21-3d5c6a7b8c90", "low-rated-chat-ticket", 0),
		EventID: "chat.ended:8f14e45f-ceea-4e7a-9b21-3d5c6a7b8c90", Rule: "low-rated-chat-ticket", Action: "comm100.ticket.create",
		Params: map[string]any{"subject": "Low rating (1) from Jane Cooper", "priority": "high",
			"message":       "Jane Cooper <jane.cooper@example.com> rated the chat 1: \"Took forever.\"\n\nTranscript:\n" + transcript,
			"custom_fields": map[string]any{"Chat ID": "8f14e45f-ceea-4e7a-9b21-3d5c6a7b8c90"}},
		Created: time.Now().UTC()}
	data, err := Encode(&j)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

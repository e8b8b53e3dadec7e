package event

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// slowDecode is what the fast decoder must agree with: encoding/json with
// UseNumber, one value and nothing but white space after it, and the numbers
// turned by Numbers unless kept.
func slowDecode(data []byte, keepNumbers bool) (any, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	if len(bytes.Trim(data[dec.InputOffset():], " \t\r\n")) != 0 {
		return nil, false
	}
	if !keepNumbers {
		v = Numbers(v)
	}
	return v, true
}

func samples(t testing.TB) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, pattern := range []string{"../ingest/testdata/comm100/*.json", "../../rules/testdata/*.json"} {
		paths, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			out[p] = data
		}
	}
	if len(out) < 10 {
		t.Fatalf("found %d samples", len(out))
	}
	return out
}

var tricky = []string{
	`{}`, `[]`, `null`, `true`, `false`, `0`, `-0`, `-0.0`, `1e3`, `1E+3`, `1.5e-7`, `123456789012345678901234567890`,
	`9223372036854775807`, `9223372036854775808`, `-9223372036854775808`, `1e400`, `-1e400`, `0.1`,
	` {"a" : [ 1 , 2 , {"b":null} ] } `, `{"a":1,"a":2}`, `"\u00e9\u2028\ud83d\ude00"`, `"caf\u00e9 \"q\" \\ \/ \b\f\n\r\t"`,
	`"日本語 ⊙ émoji 😀"`, `{"":""}`, `[[[[[]]]]]`,
}

var invalid = []string{
	``, ` `, `{`, `}`, `[1,]`, `{"a":1,}`, `{"a"}`, `{a:1}`, `01`, `1.`, `.5`, `-`, `1e`, `+1`, `tru`, `nul`, `"abc`,
	"\"a\x01b\"", `"\x"`, `"\u12"`, `"\ud800"`, `"\udc00x"`, "\"\xff\"", `1 2`, `{} x`, `[1] ]`, `NaN`, `Infinity`,
}

func TestFastDecodeAgreesWithEncodingJSON(t *testing.T) {
	check := func(name string, data []byte, mustBeFast bool) {
		t.Helper()
		for _, keep := range []bool{true, false} {
			fast, ok := FastDecode(data, keep)
			slow, slowOK := slowDecode(data, keep)
			switch {
			case ok && !slowOK:
				t.Errorf("%s (keep numbers %v): fast decoded %#v; encoding/json refuses it", name, keep, fast)
			case ok && !reflect.DeepEqual(fast, slow):
				t.Errorf("%s (keep numbers %v): fast %#v, encoding/json %#v", name, keep, fast, slow)
			case !ok && mustBeFast:
				t.Errorf("%s (keep numbers %v): fast path gave up", name, keep)
			}
		}
	}
	for name, data := range samples(t) {
		check(name, data, true)
	}
	for _, s := range tricky {
		check(s, []byte(s), true)
	}
	for _, s := range invalid {
		if _, ok := FastDecode([]byte(s), true); ok {
			t.Errorf("%q: fast decoded invalid JSON", s)
		}
		check(s, []byte(s), false)
	}
}

func TestAppendJSONAgreesWithMarshal(t *testing.T) {
	values := []any{
		"<a href=\"x\">&amp;</a>", "line\u2028sep\u2029", "bad \xff utf8", "ctl \x00\x01\x1f\x7f", "tab\tnew\nline",
		1e21, 1e20, 1e-6, 1e-7, 123.456, -0.0, 0.0, 5e-324, 1.7976931348623157e308, float64(int64(1) << 53),
		int64(-42), 7, uint64(1 << 63), true, nil, json.Number("12.5e3"), json.Number(""),
		map[string]any{"b": 1.5, "a": []any{"x", nil, map[string]any{}}, "é": []any{}},
		map[string]any(nil), []any(nil), time.Date(2026, 3, 17, 9, 15, 0, 123, time.UTC),
	}
	for _, v := range values {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := AppendValue(nil, v)
		if !ok || string(got) != string(want) {
			t.Errorf("%#v: got %s (ok %v), want %s", v, got, ok, want)
		}
	}
	for _, v := range []any{json.Number("1x"), map[string]string{"a": "b"}, struct{}{}} {
		if _, ok := AppendValue(nil, v); ok {
			t.Errorf("%#v: the fast encoder took a value it does not know", v)
		}
	}
	for name, data := range samples(t) {
		v, ok := FastDecode(data, false)
		m, isMap := v.(map[string]any)
		if !ok || !isMap {
			continue
		}
		for _, ev := range []*Event{
			{ID: "chat.ended:1", Source: "comm100", Type: "chat.ended", Time: time.Date(2024, 11, 22, 17, 50, 12, 0, time.UTC), Data: m},
			{ID: "x<y>&", Source: "s", Type: "t", Subject: "subj", Data: nil},
		} {
			want, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ev.AppendJSON(nil)
			if err != nil || string(got) != string(want) {
				t.Errorf("%s: AppendJSON gave %s (%v), json.Marshal %s", name, got, err, want)
			}
			var back Event
			if err := back.UnmarshalJSON(got); err != nil || !back.fastUnmarshal(got) {
				t.Fatalf("%s: event does not decode on the fast path: %v", name, err)
			}
			var slow Event
			type plain Event
			var raw struct {
				plain
				Data json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal(got, &raw); err != nil {
				t.Fatal(err)
			}
			slow = Event(raw.plain)
			slow.Data, _ = DecodeObject(raw.Data)
			if !reflect.DeepEqual(back, slow) {
				t.Errorf("%s: fast event %#v, slow %#v", name, back, slow)
			}
		}
	}
}

// An event in any other shape than the bot writes is left to encoding/json.
func TestEventUnmarshalFallsBack(t *testing.T) {
	for _, in := range []string{
		`{"ID":"a","source":"s","type":"t","time":"2026-03-17T09:15:00Z","data":{}}`,
		`{"id":"a","source":"s","type":"t","time":"2026-03-17T09:15:00Z","data":{},"extra":1}`,
		`{"id":"a","source":"s","type":"t","time":null,"data":{"n":1}}`,
	} {
		var e Event
		if e.fastUnmarshal([]byte(in)) {
			t.Errorf("%s: taken by the fast path", in)
		}
		if err := json.Unmarshal([]byte(in), &e); err != nil || e.ID != "a" {
			t.Errorf("%s: got %+v, %v", in, e, err)
		}
	}
	// What encoding/json refuses and a map would hide: a field given twice,
	// the first of the wrong type; a time written with escapes, which
	// time.Time decodes from its raw bytes.
	for _, in := range []string{
		`{"id":5,"id":"a","source":"s","type":"t","time":"2026-03-17T09:15:00Z","data":{}}`,
		`{"id":"a","source":"s","type":"t","time":"junk","time":"2026-03-17T09:15:00Z","data":{}}`,
		`{"id":"a","source":"s","type":"t","time":"2026-03-17T09:15:00\u005A","data":{}}`,
	} {
		var e Event
		if e.fastUnmarshal([]byte(in)) {
			t.Errorf("%s: taken by the fast path", in)
		}
		if err := json.Unmarshal([]byte(in), &e); err == nil {
			t.Errorf("%s: decoded; encoding/json refuses it", in)
		}
	}
	var e Event
	if err := json.Unmarshal([]byte(`{"id":"a","source":"s","type":"t","time":"yesterday","data":{}}`), &e); err == nil {
		t.Error("a bad time decoded")
	}
}

func FuzzFastDecode(f *testing.F) {
	for _, data := range samples(f) {
		f.Add(data)
	}
	for _, s := range append(tricky, invalid...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, keep := range []bool{true, false} {
			fast, ok := FastDecode(data, keep)
			if !ok {
				continue
			}
			slow, slowOK := slowDecode(data, keep)
			if !slowOK {
				t.Fatalf("fast decoded %#v; encoding/json refuses %q", fast, data)
			}
			if !reflect.DeepEqual(fast, slow) {
				t.Fatalf("%q: fast %#v, encoding/json %#v", data, fast, slow)
			}
			want, err := json.Marshal(fast)
			if err != nil {
				continue
			}
			if got, ok := AppendValue(nil, fast); !ok || string(got) != string(want) {
				t.Fatalf("%q: AppendValue %s (ok %v), json.Marshal %s", data, got, ok, want)
			}
		}
	})
}

// FuzzEventUnmarshal: an event the one-pass decoder takes is the event
// encoding/json gives.
func FuzzEventUnmarshal(f *testing.F) {
	for _, data := range samples(f) {
		f.Add(data)
	}
	f.Add([]byte(`{"id":"a","source":"s","type":"t","time":"2026-03-17T09:15:00Z","subject":"x","data":{"n":1}}`))
	f.Add([]byte(`{"id":5,"id":"a","source":"s","type":"t","time":"2026-03-17T09:15:00Z","data":{}}`))
	f.Add([]byte(`{"id":"a","source":"s","type":"t","time":"2026-03-17T09:15:00\u005A","data":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast Event
		if !fast.fastUnmarshal(data) {
			return
		}
		type plain Event
		var raw struct {
			plain
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(data, &raw); err != nil {
			t.Fatalf("fast decoded %q; encoding/json refuses it: %v", data, err)
		}
		slow := Event(raw.plain)
		slow.Data, _ = DecodeObject(raw.Data)
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q: fast %#v, slow %#v", data, fast, slow)
		}
	})
}

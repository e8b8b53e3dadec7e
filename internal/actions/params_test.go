package actions

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/comm100bot/bot/internal/job"
)

func TestParamCheck(t *testing.T) {
	guid := "7c4a3b1e-2f6d-4e1a-9b8c-0d5e6f7a8b9c"
	tests := []struct {
		name  string
		param Param
		value any
		err   string // "" accepts
	}{
		{"text: string", Param{Type: textType}, "hi", ""},
		{"text: number", Param{Type: textType}, int64(42), ""},
		{"text: list becomes lines", Param{Type: textType}, []any{"a", int64(1)}, ""},
		{"text: object refused", Param{Type: textType}, map[string]any{"a": 1}, "want text, got an object"},
		{"text: list of objects refused", Param{Type: textType}, []any{map[string]any{}}, "want text, got a list"},
		{"enum: listed", Param{Type: enumType(false, "high", "low")}, "high", ""},
		{"enum: misspelt", Param{Type: enumType(false, "urgent", "high", "normal", "low")}, "hgih", `want urgent, high, normal or low, got "hgih"`},
		{"enum: case matters", Param{Type: enumType(false, "high", "low")}, "High", `want high or low, got "High"`},
		{"enum: folded", Param{Type: enumType(true, "GET", "POST")}, "post", ""},
		{"enum: number refused", Param{Type: enumType(false, "a")}, 3, "want a, got 3"},
		{"integer id: number", Param{Type: integerIDType}, int64(1001), ""},
		{"integer id: YAML int", Param{Type: integerIDType}, 1001, ""},
		{"integer id: whole float", Param{Type: integerIDType}, float64(1001), ""},
		{"integer id: digits", Param{Type: integerIDType}, "1001", ""},
		{"integer id: letters", Param{Type: integerIDType}, "abc", `want an integer id, got "abc"`},
		{"integer id: zero", Param{Type: integerIDType}, int64(0), "want an integer id, got 0"},
		{"integer id: negative digits", Param{Type: integerIDType}, "-4", `want an integer id, got "-4"`},
		{"integer id: fraction", Param{Type: integerIDType}, 1.5, "want an integer id, got 1.5"},
		{"integer id: too long", Param{Type: integerIDType}, "99999999999999999999", "want an integer id"},
		{"guid", Param{Type: guidType}, guid, ""},
		{"guid: upper case", Param{Type: guidType}, strings.ToUpper(guid), ""},
		{"guid: a name", Param{Type: guidType}, "bob", `want a GUID such as 7c4a3b1e-2f6d-4e1a-9b8c-0d5e6f7a8b9c, got "bob"`},
		{"guid: a number", Param{Type: guidType}, 7, "got 7"},
		{"chat id: integer", Param{Type: chatIDType}, int64(3356721), ""},
		{"chat id: guid", Param{Type: chatIDType}, guid, ""},
		{"chat id: other", Param{Type: chatIDType}, "chat-1", `want an integer id or a GUID, got "chat-1"`},
		{"object", Param{Type: objectType}, map[string]any{}, ""},
		{"object: string", Param{Type: objectType}, "x", `want an object, got "x"`},
		{"list: list", Param{Type: listType(guidType)}, []any{guid, guid}, ""},
		{"list: one value is a list of one", Param{Type: listType(guidType)}, guid, ""},
		{"list: bad item", Param{Type: listType(guidType)}, []any{guid, "vip"}, `item 2: want a GUID`},
		{"list: deferred items are accepted", Param{Type: listType(guidType)}, []any{Deferred{}, guid}, ""},
		{"url", Param{Type: urlType}, "https://crm.example/hook", ""},
		{"url: relative", Param{Type: urlType}, "/hook", `want an absolute http(s) URL, got "/hook"`},
		{"url: other scheme", Param{Type: urlType}, "ftp://x/y", `want an absolute http(s) URL, got "ftp://x/y"`},
		{"any", Param{Type: anyType}, []any{1, "x"}, ""},
		{"absent optional", Param{Type: integerIDType}, nil, ""},
		{"empty optional", Param{Type: integerIDType}, "", ""},
		{"absent required", Param{Type: textType, Required: true}, nil, "is required"},
		{"empty required", Param{Type: textType, Required: true}, "", "is required"},
		{"deferred", Param{Type: integerIDType, Required: true}, Deferred{}, ""},
		{"untyped accepts anything", Param{}, map[string]any{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.param.Check(tt.value)
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("got %v, want it accepted", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("got %v, want an error saying %q", err, tt.err)
			}
		})
	}
}

func TestActionCheck(t *testing.T) {
	note, _ := NewCatalog().Lookup("comm100.ticket.note")
	tests := []struct {
		name   string
		params map[string]any
		param  string // "" accepts
	}{
		{"rendered fine", map[string]any{"ticket_id": int64(1042), "text": "shipped"}, ""},
		{"rendered ticket id not a number", map[string]any{"ticket_id": "n/a", "text": "x"}, "ticket_id"},
		{"rendered empty", map[string]any{"ticket_id": "1042", "text": ""}, "text"},
		{"missing", map[string]any{"text": "x"}, "ticket_id"},
		{"undeclared", map[string]any{"ticket_id": "1", "text": "x", "color": "red"}, "color"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := note.Check(tt.params)
			var pe *ParamError
			switch {
			case tt.param == "" && err != nil:
				t.Errorf("got %v, want none", err)
			case tt.param != "" && (!errors.As(err, &pe) || pe.Param != tt.param):
				t.Errorf("got %v, want a ParamError about %q", err, tt.param)
			case tt.param != "" && Retryable(err):
				t.Errorf("%v is retryable; a bad value never gets better", err)
			}
		})
	}
}

// TestEveryParamIsTyped: a parameter declared without a type would accept
// anything at load and fail at run time, which is what types are for.
func TestEveryParamIsTyped(t *testing.T) {
	cat := NewCatalog()
	for _, name := range cat.Names() {
		a, _ := cat.Lookup(name)
		seen := map[string]bool{}
		for _, p := range a.Params {
			if p.Type.name == "" {
				t.Errorf("%s: param %s has no type", name, p.Name)
			}
			if seen[p.Name] {
				t.Errorf("%s: param %s declared twice", name, p.Name)
			}
			seen[p.Name] = true
		}
	}
}

// TestComm100ActionsAreNamedSo: the jobs of an action that calls Comm100
// go to the pool's Comm100 lane by their name (the subject it gives them);
// one named otherwise would hold a worker of the other lane while it waits
// for the budget, and one named so that calls nothing would wait behind the
// tickets.
func TestComm100ActionsAreNamedSo(t *testing.T) {
	cat := NewCatalog()
	for _, name := range cat.Names() {
		a, _ := cat.Lookup(name)
		if named := strings.HasPrefix(name, job.Comm100ActionPrefix); named != a.Comm100 {
			t.Errorf("%s: Comm100 is %t, but its name says %t", name, a.Comm100, named)
		}
	}
}

func TestParamsAccessors(t *testing.T) {
	p := Params{"n": int64(9007199254740993), "f": 1.5, "lines": []any{"a", "b"}, "one": "x", "m": map[string]any{"k": 1}}
	if got := p.String("n"); got != "9007199254740993" {
		t.Errorf("String(n): got %q", got)
	}
	if got := p.String("lines"); got != "a\nb" {
		t.Errorf("String(lines): got %q, want lines", got)
	}
	if got := p.String("f"); got != "1.5" {
		t.Errorf("String(f): got %q", got)
	}
	if got, err := p.Strings("one"); err != nil || !cmp.Equal(got, []string{"x"}) {
		t.Errorf("Strings(one): got %v %v", got, err)
	}
	if _, err := p.Strings("m"); err == nil {
		t.Error("Strings(m): an object taken for a list")
	}
	if _, err := p.Map("one"); err == nil || Retryable(err) {
		t.Errorf("Map(one): got %v, want a permanent error", err)
	}
	if _, err := p.Require("absent"); err == nil || Retryable(err) {
		t.Errorf("Require(absent): got %v, want a permanent error", err)
	}
}

package actions

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Param declares one "with" parameter of an action: the rule checker refuses
// unknown ones, missing required ones and values of the wrong type, and the
// pool checks the rendered values again before every call.
type Param struct {
	Name     string
	Type     Type
	Required bool
	Doc      string
}

// Type is the type of a parameter's value. Values are what a YAML rule file
// or a rendered template holds: strings, numbers, booleans, objects and lists.
type Type struct {
	// name is what the documentation calls the type.
	name string
	// check refuses a present, non-deferred value; nil accepts any.
	check func(v any) error
}

// String is the type as the README's action table writes it.
func (t Type) String() string {
	if t.name == "" {
		return "any"
	}
	return t.name
}

// Deferred stands for a value only known when the job runs, such as a
// {{ template }}: Check accepts it, and the pool checks the rendered value.
type Deferred struct{}

// ParamError is a parameter value that cannot be used. Retrying cannot fix it.
type ParamError struct {
	Param string
	Err   error
}

func (e *ParamError) Error() string { return fmt.Sprintf("param %q: %v", e.Param, e.Err) }
func (e *ParamError) Unwrap() error { return e.Err }

// Check reports whether v is a valid value for the parameter. nil and ""
// mean absent, which only a required parameter refuses. A Deferred value,
// or one holding a Deferred, is accepted where it stands.
func (p Param) Check(v any) error {
	if absent(v) {
		if p.Required {
			return fmt.Errorf("is required and must not be empty")
		}
		return nil
	}
	if _, ok := v.(Deferred); ok || p.Type.check == nil {
		return nil
	}
	return p.Type.check(v)
}

// Check checks rendered params against the action's declarations: every
// declared parameter, and no undeclared one. The error is a *ParamError.
func (a *Action) Check(params map[string]any) error {
	for _, p := range a.Params {
		if err := p.Check(params[p.Name]); err != nil {
			return &ParamError{Param: p.Name, Err: err}
		}
	}
	for name := range params {
		if _, ok := a.Param(name); !ok {
			return &ParamError{Param: name, Err: fmt.Errorf("%s takes no such parameter", a.Name)}
		}
	}
	return nil
}

func absent(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	}
	return false
}

// The types the catalogue uses.
var (
	// textType is any scalar, used as text, or a list of them, used as
	// lines (a whole {{ template }} of a list, such as a chat transcript).
	textType = Type{name: "text", check: func(v any) error {
		if _, ok := text(v); !ok {
			return fmt.Errorf("want text, got %s", describe(v))
		}
		return nil
	}}
	// integerIDType is a positive integer, as a number or a string of
	// digits: Comm100 numbers tickets.
	integerIDType = Type{name: "integer id", check: func(v any) error {
		if !integerID(v) {
			return fmt.Errorf("want an integer id, got %s", describe(v))
		}
		return nil
	}}
	// guidType is a GUID: Comm100's id of agents, departments, contacts,
	// visitors and tags.
	guidType = Type{name: "GUID", check: func(v any) error {
		if s, ok := v.(string); !ok || !guidPattern.MatchString(s) {
			return fmt.Errorf("want a GUID such as 7c4a3b1e-2f6d-4e1a-9b8c-0d5e6f7a8b9c, got %s", describe(v))
		}
		return nil
	}}
	// chatIDType is an integer (REST) or a GUID (webhooks): the ids of
	// chats and offline messages.
	chatIDType = Type{name: "integer id or GUID", check: func(v any) error {
		if s, ok := v.(string); (ok && guidPattern.MatchString(s)) || integerID(v) {
			return nil
		}
		return fmt.Errorf("want an integer id or a GUID, got %s", describe(v))
	}}
	// objectType is a mapping.
	objectType = Type{name: "object", check: func(v any) error {
		if _, ok := v.(map[string]any); !ok {
			return fmt.Errorf("want an object, got %s", describe(v))
		}
		return nil
	}}
	// urlType is an absolute http or https URL.
	urlType = Type{name: "http(s) URL", check: func(v any) error {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("want an absolute http(s) URL, got %s", describe(v))
		}
		if u, err := url.Parse(s); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("want an absolute http(s) URL, got %q", s)
		}
		return nil
	}}
	// anyType is any JSON value.
	anyType = Type{name: "any JSON"}
)

var guidPattern = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)

// enumType is one of a fixed set of strings. With fold, case does not matter.
func enumType(fold bool, values ...string) Type {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = "`" + v + "`"
	}
	return Type{name: strings.Join(quoted, "/"), check: func(v any) error {
		s, ok := v.(string)
		for _, want := range values {
			if ok && (s == want || (fold && strings.EqualFold(s, want))) {
				return nil
			}
		}
		return fmt.Errorf("want %s, got %s", orList(values), describe(v))
	}}
}

// listType is a list of elem values; a single value is a list of one.
func listType(elem Type) Type {
	name := "list of " + elem.String()
	if !strings.HasSuffix(name, "s") {
		name += "s"
	}
	return Type{name: name, check: func(v any) error {
		list, ok := v.([]any)
		if !ok {
			list = []any{v}
		}
		for i, e := range list {
			if _, ok := e.(Deferred); ok || elem.check == nil {
				continue
			}
			if err := elem.check(e); err != nil {
				return fmt.Errorf("item %d: %w", i+1, err)
			}
		}
		return nil
	}}
}

// text returns a scalar as text, and a list of scalars as lines.
func text(v any) (string, bool) {
	list, ok := v.([]any)
	if !ok {
		return scalarText(v)
	}
	lines := make([]string, len(list))
	for i, e := range list {
		if lines[i], ok = scalarText(e); !ok && e != nil {
			return "", false
		}
	}
	return strings.Join(lines, "\n"), true
}

// scalarText returns a scalar as text.
func scalarText(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case int:
		return strconv.Itoa(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case uint64:
		return strconv.FormatUint(x, 10), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case json.Number:
		return x.String(), true
	}
	return "", false
}

func integerID(v any) bool {
	switch x := v.(type) {
	case int:
		return x > 0
	case int64:
		return x > 0
	case uint64:
		return x > 0
	case float64:
		return x > 0 && x == math.Trunc(x) && x < 1<<53
	case json.Number, string:
		s := fmt.Sprint(x)
		if s == "" || len(s) > 19 {
			return false
		}
		for _, c := range s {
			if c < '0' || c > '9' {
				return false
			}
		}
		n, err := strconv.ParseInt(s, 10, 64)
		return err == nil && n > 0
	}
	return false
}

// describe names a value for an error message.
func describe(v any) string {
	switch x := v.(type) {
	case string:
		if len(x) > 60 {
			x = x[:60] + "…"
		}
		return strconv.Quote(x)
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	}
	if s, ok := scalarText(v); ok {
		return s
	}
	return fmt.Sprintf("a %T", v)
}

// orList writes values as "a, b or c".
func orList(values []string) string {
	switch len(values) {
	case 0:
		return "nothing"
	case 1:
		return values[0]
	}
	return strings.Join(values[:len(values)-1], ", ") + " or " + values[len(values)-1]
}

// Params are the rendered "with" values of a job.
type Params map[string]any

// String returns the parameter as text ("" when absent): a list of scalars
// becomes lines, as it does inside a template.
func (p Params) String(name string) string {
	v := p[name]
	if v == nil {
		return ""
	}
	if s, ok := text(v); ok {
		return s
	}
	return fmt.Sprint(v)
}

// Require returns the parameter as a non-empty string, or a permanent error.
func (p Params) Require(name string) (string, error) {
	s := p.String(name)
	if s == "" {
		return "", &ParamError{Param: name, Err: fmt.Errorf("is required")}
	}
	return s, nil
}

// Map returns the parameter as an object (nil when absent).
func (p Params) Map(name string) (map[string]any, error) {
	switch v := p[name].(type) {
	case nil:
		return nil, nil
	case map[string]any:
		return v, nil
	default:
		return nil, &ParamError{Param: name, Err: fmt.Errorf("want an object, got %s", describe(v))}
	}
}

// Strings returns the parameter as a list of strings (nil when absent).
func (p Params) Strings(name string) ([]string, error) {
	switch v := p[name].(type) {
	case nil:
		return nil, nil
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := scalarText(e)
			if !ok {
				return nil, &ParamError{Param: name, Err: fmt.Errorf("want a list of text, got %s in it", describe(e))}
			}
			out = append(out, s)
		}
		return out, nil
	case []string:
		return v, nil
	default:
		if s, ok := scalarText(v); ok {
			return []string{s}, nil
		}
		return nil, &ParamError{Param: name, Err: fmt.Errorf("want a list, got %s", describe(v))}
	}
}

package rules

import (
	"reflect"
	"strings"
)

// Shapes knows the data of some events in advance, so that the rules that
// listen only to such events are type-checked when they load: a rule that
// reads a field the event does not have (data.chat.ratting) is refused with
// the field's position, instead of being silently false at run time.
//
// The code that produces the events owns their shapes (ingest.Comm100Shapes
// for the Comm100 normalizer); the caller adds them under the name of the
// source the events arrive on. The zero value knows no shapes, and nor does
// a nil *Shapes: every rule is then checked untyped. Add must not be called
// while rules load.
type Shapes struct {
	byTopic map[string]any  // "source.type" -> a struct value with expr tags
	types   map[string]bool // the struct types found in the shapes, as expr names them
}

// Add registers the shapes of a source's events: for each event type, a
// struct value whose expr tags name the fields of the event's data.
func (s *Shapes) Add(source string, byType map[string]any) {
	if s.byTopic == nil {
		s.byTopic = map[string]any{}
		s.types = map[string]bool{}
	}
	for typ, data := range byType {
		s.byTopic[source+"."+typ] = data
		s.addTypes(reflect.TypeOf(data))
	}
}

// addTypes records t and the struct types inside it, so that type-check
// messages naming them can be told in the user's terms.
func (s *Shapes) addTypes(t reflect.Type) {
	for t != nil && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map) {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct || s.types[t.String()] {
		return
	}
	s.types[t.String()] = true
	for i := range t.NumField() {
		s.addTypes(t.Field(i).Type)
	}
}

// envsFor returns the typed environments to check a rule's expressions
// against: one per pattern, when every pattern names one event with a known
// shape exactly; none (no typed check) otherwise.
func (s *Shapes) envsFor(patterns []string) []map[string]any {
	if s == nil || len(s.byTopic) == 0 {
		return nil
	}
	var out []map[string]any
	for _, p := range patterns {
		if strings.ContainsAny(p, "*>") {
			return nil
		}
		data, ok := s.byTopic[p]
		if !ok {
			return nil
		}
		env := make(map[string]any, len(shape))
		for k, v := range shape {
			env[k] = v
		}
		env["data"] = data
		out = append(out, env)
	}
	return out
}

// isShapeType reports whether name ("ingest.c100Chat") is one of the
// struct types of the shapes.
func (s *Shapes) isShapeType(name string) bool {
	return s != nil && s.types[name]
}

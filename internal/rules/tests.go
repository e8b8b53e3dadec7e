package rules

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"
)

var testKeys = []string{"name", "event", "source", "now", "expect"}

func (l *fileLoader) tests(n *yaml.Node, rule string) []*Test {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		l.errorf(n, rule, "tests: want a list")
		return nil
	}
	var out []*Test
	for i, tn := range n.Content {
		fields := l.mapping(tn, rule, testKeys...)
		if fields == nil {
			continue
		}
		t := &Test{Line: tn.Line}
		if v := fields["name"]; v != nil {
			t.Name, _ = l.str(v, rule, "tests.name")
		}
		if t.Name == "" {
			t.Name = "test " + strconv.Itoa(i+1)
		}
		if v := fields["source"]; v != nil {
			t.Source, _ = l.str(v, rule, "tests.source")
		}
		if v := fields["now"]; v != nil {
			if s, ok := l.str(v, rule, "tests.now"); ok {
				ts, err := time.Parse(time.RFC3339, s)
				if err != nil {
					l.errorf(v, rule, "tests.now: want an RFC 3339 time such as 2026-03-02T18:30:00Z")
				}
				t.Now = ts
			}
		}
		switch v := fields["event"]; {
		case v == nil:
			l.errorf(tn, rule, `test %q has no "event"`, t.Name)
		case resolve(v).Kind == yaml.ScalarNode:
			t.EventFile = resolve(v).Value
			data, err := os.ReadFile(filepath.Join(filepath.Dir(l.path), t.EventFile))
			if err == nil {
				if err = json.Unmarshal(data, &t.Event); err != nil {
					err = fmt.Errorf("%s is not a JSON object: %w", t.EventFile, err)
				}
			}
			if err != nil {
				t.EventErr = &Error{File: l.path, Line: v.Line, Col: v.Column, Rule: rule, Msg: "tests.event: " + err.Error()}
			}
		default:
			if err := v.Decode(&t.Event); err != nil {
				l.errorf(v, rule, "tests.event: want a file name or an inline event: %v", err)
			}
		}
		if v := fields["expect"]; v == nil {
			l.errorf(tn, rule, `test %q has no "expect"; use "expect: []" to expect no actions`, t.Name)
		} else {
			t.Expect = l.expectations(v, rule)
		}
		out = append(out, t)
	}
	return out
}

func (l *fileLoader) expectations(n *yaml.Node, rule string) []Expectation {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		l.errorf(n, rule, "tests.expect: want a list of actions")
		return nil
	}
	out := []Expectation{}
	for _, en := range n.Content {
		en = resolve(en)
		if en.Kind == yaml.ScalarNode {
			out = append(out, Expectation{Do: en.Value})
			continue
		}
		fields := l.mapping(en, rule, "do", "with")
		if fields == nil {
			continue
		}
		var ex Expectation
		if v := fields["do"]; v != nil {
			ex.Do, _ = l.str(v, rule, "tests.expect.do")
		} else {
			l.errorf(en, rule, `tests.expect: want "do"`)
		}
		if v := fields["with"]; v != nil {
			if err := v.Decode(&ex.With); err != nil {
				l.errorf(v, rule, "tests.expect.with: %v", err)
			}
		}
		out = append(out, ex)
	}
	return out
}

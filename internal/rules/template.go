package rules

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr/vm"
)

// value is a compiled "with" value: a literal, a template string, or a map or
// list of values.
type value interface {
	render(e *env) (any, error)
}

type literal struct{ v any }

func (l literal) render(*env) (any, error) { return l.v, nil }

type mapValue map[string]value

func (m mapValue) render(e *env) (any, error) {
	out := make(map[string]any, len(m))
	for k, v := range m {
		r, err := v.render(e)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		out[k] = r
	}
	return out, nil
}

type listValue []value

func (l listValue) render(e *env) (any, error) {
	out := make([]any, len(l))
	for i, v := range l {
		r, err := v.render(e)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		out[i] = r
	}
	return out, nil
}

// template is a string with {{ expr }} parts. A template that is exactly one
// {{ expr }} keeps the expression's type.
type template struct {
	parts []part
	whole bool
}

type part struct {
	text string
	prog *vm.Program
	src  string
}

// exprSpan locates one {{ expr }} inside a template string, by rune offset of
// the expression text.
type exprSpan struct {
	src    string
	offset int
}

// splitTemplate cuts s into literal text and {{ expr }} spans. It reports an
// unclosed "{{".
func splitTemplate(s string) (texts []string, spans []exprSpan, err error) {
	rest := s
	consumed := 0
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			texts = append(texts, rest)
			return texts, spans, nil
		}
		j := strings.Index(rest[i+2:], "}}")
		if j < 0 {
			return nil, nil, fmt.Errorf(`"{{" at offset %d is not closed by "}}"`, consumed+i)
		}
		inner := rest[i+2 : i+2+j]
		lead := len(inner) - len(strings.TrimLeft(inner, " \t"))
		texts = append(texts, rest[:i])
		spans = append(spans, exprSpan{
			src:    strings.TrimSpace(inner),
			offset: len([]rune(s[:consumed+i+2+lead])),
		})
		consumed += i + 2 + j + 2
		rest = rest[i+2+j+2:]
	}
}

func (t *template) render(e *env) (any, error) {
	if t.whole {
		return run(t.parts[0].prog, e)
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.prog == nil {
			b.WriteString(p.text)
			continue
		}
		v, err := run(p.prog, e)
		if err != nil {
			return nil, fmt.Errorf("{{ %s }}: %w", p.src, err)
		}
		writeValue(&b, v)
		if b.Len() > maxRenderSize {
			return nil, fmt.Errorf("rendered text is larger than %d bytes", maxRenderSize)
		}
	}
	return b.String(), nil
}

// writeValue renders a value inside text: nothing for nil, lists of lines
// joined by newlines, times in RFC 3339.
func writeValue(b *strings.Builder, v any) {
	switch x := v.(type) {
	case nil:
	case string:
		b.WriteString(x)
	case time.Time:
		b.WriteString(x.Format(time.RFC3339))
	case float64:
		b.WriteString(strconv.FormatFloat(x, 'f', -1, 64))
	case []any:
		for i, e := range x {
			if i > 0 {
				b.WriteByte('\n')
			}
			writeValue(b, e)
		}
	default:
		fmt.Fprint(b, x)
	}
}

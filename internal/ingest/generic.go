package ingest

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"

	"github.com/comm100bot/bot/internal/event"
)

// defaultGenericType is the event type of a generic source that configures none.
const defaultGenericType = "webhook"

// field is a compiled expression that gives one attribute of the event.
type field struct {
	key  string // config key, for messages
	prog *vm.Program
	// headers the expression reads, as written in it, to say which is
	// missing when the expression gives nothing.
	headers []string
}

// newGenericDecoder compiles the type, id and subject expressions of a
// generic source (the preset's where the config gives none).
func newGenericDecoder(name string, cfg SourceConfig) (decodeFunc, error) {
	p := presets[cfg.Preset]
	exprs := []struct{ key, src, preset string }{
		{"type", cfg.Type, p.typ},
		{"id", cfg.ID, p.id},
		{"subject", cfg.Subject, p.subject},
	}
	var fields [3]*field
	for i, e := range exprs {
		src := e.src
		if src == "" {
			src = e.preset
		}
		if src == "" {
			continue
		}
		prog, headers, err := compileField(src)
		if err != nil {
			return nil, fmt.Errorf("sources.%s.%s: %w", name, e.key, err)
		}
		fields[i] = &field{key: e.key, prog: prog, headers: headers}
	}
	typ, id, subject := fields[0], fields[1], fields[2]

	return func(r *http.Request, body []byte, received time.Time) (*event.Event, error) {
		v, err := decodeAnyJSON(body)
		if err != nil {
			return nil, err
		}
		v = plainValue(v)
		env := newExprEnv(v, r)
		ev := &event.Event{Source: name, Type: defaultGenericType, Time: received.UTC(), Data: asObject(v)}
		if typ != nil {
			if ev.Type, err = typ.eval(env); err != nil {
				return nil, err
			}
			if ev.Type == "" {
				if missing := typ.missingHeaders(r.Header); len(missing) > 0 {
					return nil, fmt.Errorf("missing %s header: the event type of source %s comes from it", strings.Join(missing, ", "), name)
				}
				return nil, fmt.Errorf("the type expression gave no type")
			}
		}
		if id == nil && p.idFromBody {
			ev.ID = ev.Type + ":" + bodyHash(body)
		}
		if id != nil {
			if ev.ID, err = id.eval(env); err != nil {
				return nil, err
			}
		}
		if ev.ID == "" {
			// The same body under another type (X-Event: created, then
			// updated) is another event.
			ev.ID = ev.Type + ":" + bodyHash(body)
		}
		if subject != nil {
			if ev.Subject, err = subject.eval(env); err != nil {
				return nil, err
			}
		}
		return ev, nil
	}, nil
}

// compileField compiles an expression over body, headers and query, and
// returns the names of the headers it reads.
func compileField(src string) (*vm.Program, []string, error) {
	lower := &lowerHeaderKeys{}
	prog, err := expr.Compile(src,
		expr.Env(exprEnv{}),
		expr.Patch(lower),
	)
	return prog, lower.names, err
}

// missingHeaders lists the headers the expression reads that h lacks.
func (f *field) missingHeaders(h http.Header) []string {
	var out []string
	for _, name := range f.headers {
		if h.Get(name) == "" {
			out = append(out, name)
		}
	}
	return out
}

// eval runs the expression and renders a scalar result as a string; nil is "".
func (f *field) eval(env exprEnv) (string, error) {
	out, err := expr.Run(f.prog, env)
	if err != nil {
		return "", fmt.Errorf("the %s expression failed on this request: %w", f.key, err)
	}
	switch v := out.(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case int64, int, float64, bool:
		return fmt.Sprint(v), nil
	default:
		return "", fmt.Errorf("the %s expression gave a %T, want a string or a number", f.key, out)
	}
}

// exprEnv is what expressions see: the decoded body, and the headers and
// query parameters (first value of each), header names in lower case.
type exprEnv struct {
	Body    any               `expr:"body"`
	Headers map[string]string `expr:"headers"`
	Query   map[string]string `expr:"query"`
}

func newExprEnv(body any, r *http.Request) exprEnv {
	headers := make(map[string]string, len(r.Header))
	for k, vs := range r.Header {
		if len(vs) > 0 {
			headers[strings.ToLower(k)] = vs[0]
		}
	}
	query := map[string]string{}
	for k, vs := range r.URL.Query() {
		if len(vs) > 0 {
			query[k] = vs[0]
		}
	}
	return exprEnv{Body: body, Headers: headers, Query: query}
}

// lowerHeaderKeys rewrites headers["X-GitHub-Event"] and headers.Foo to the
// lower-case names exprEnv uses, so that header names match whatever their
// case, as in HTTP, and remembers the names as written.
type lowerHeaderKeys struct{ names []string }

func (l *lowerHeaderKeys) Visit(node *ast.Node) {
	m, ok := (*node).(*ast.MemberNode)
	if !ok {
		return
	}
	if id, ok := m.Node.(*ast.IdentifierNode); !ok || id.Value != "headers" {
		return
	}
	if s, ok := m.Property.(*ast.StringNode); ok {
		// Compilation may visit a node again, once it is lower case.
		if !slices.ContainsFunc(l.names, func(n string) bool { return strings.EqualFold(n, s.Value) }) {
			l.names = append(l.names, s.Value)
		}
		s.Value = strings.ToLower(s.Value)
	}
}

// asObject is the event data for a decoded body: the object itself, or any
// other JSON value under "value".
func asObject(v any) map[string]any {
	if m, ok := v.(map[string]any); ok {
		return m
	}
	return map[string]any{"value": v}
}

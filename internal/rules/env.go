package rules

import (
	"fmt"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/comm100bot/bot/internal/comm100"
	"github.com/comm100bot/bot/internal/event"
)

// Limits that keep one bad expression from stalling the engine.
const (
	maxExprNodes  = 2000
	maxExprBytes  = 4096
	memoryBudget  = 200_000
	maxRenderSize = 1 << 20
)

// env is what expressions see: the event's attributes as variables, and
// now() and the helpers that read the clock.
type env struct {
	vars map[string]any
}

func newEnv(ev *event.Event, now time.Time) *env {
	data := ev.Data
	if data == nil {
		data = map[string]any{}
	}
	return &env{vars: map[string]any{
		"id":      ev.ID,
		"source":  ev.Source,
		"type":    ev.Type,
		"time":    ev.Time,
		"subject": ev.Subject,
		"data":    data,
		"now":     func() time.Time { return now },
		"localTime": func(tz string) (time.Time, error) {
			return localTime(now, tz)
		},
		"businessHours": func(tz, spec string, at ...any) (bool, error) {
			t, err := optionalTime(now, at)
			if err != nil {
				return false, err
			}
			return businessHours(t, tz, spec)
		},
	}}
}

// shape is the compile-time environment: the variable names and their types.
var shape = map[string]any{
	"id":      "",
	"source":  "",
	"type":    "",
	"time":    time.Time{},
	"subject": "",
	"data":    map[string]any{},
	"now":     func() time.Time { return time.Time{} },
	// localTime(tz) is now in a Comm100 Windows time-zone id or IANA zone.
	"localTime": func(string) (time.Time, error) { return time.Time{}, nil },
	// businessHours(tz, "Mon-Fri 09:00-17:00"[, time]) reports whether now,
	// or the time given, is inside.
	"businessHours": func(string, string, ...any) (bool, error) { return false, nil },
}

func compileOptions(env any) []expr.Option {
	return []expr.Option{
		expr.Env(env),
		expr.MaxNodes(maxExprNodes),
		expr.Function("default",
			func(params ...any) (any, error) {
				if isEmpty(params[0]) {
					return params[1], nil
				}
				return params[0], nil
			},
			new(func(any, any) any),
		),
	}
}

// compile compiles one expression; asBool requires a boolean result. When
// typed environments are given, the expression must also type-check against
// at least one of them, so that a misspelt field of a known event is an
// error; the program itself runs on the untyped event.
func compile(src string, asBool bool, typed []map[string]any) (*vm.Program, error) {
	if len(src) > maxExprBytes {
		return nil, fmt.Errorf("expression is %d bytes; the limit is %d", len(src), maxExprBytes)
	}
	opts := func(env any) []expr.Option {
		o := compileOptions(env)
		if asBool {
			o = append(o, expr.AsBool())
		}
		return o
	}
	prog, err := expr.Compile(src, append(opts(shape), expr.Patch(nilSafe{}))...)
	if err == nil {
		err = checkConstantArgs(src, prog.Node())
	}
	if err != nil || len(typed) == 0 {
		return prog, err
	}
	var first error
	for _, env := range typed {
		if _, err := expr.Compile(src, opts(env)...); err == nil {
			return prog, nil
		} else if first == nil {
			first = err
		}
	}
	return nil, first
}

// nilSafe makes every field access of the program that runs optional, as
// `?.` is: a field of an object the event does not have is nil, as a
// missing field is, rather than an error that parks the event. Fields of
// events of a known shape are checked when the rules load.
type nilSafe struct{}

func (nilSafe) Visit(node *ast.Node) {
	if m, ok := (*node).(*ast.MemberNode); ok && !m.Method && !m.Optional && !isEnv(m.Node) {
		// As the parser makes `a?.b`: the access, optional, in a chain
		// that ends in nil when the object is nil.
		m.Optional = true
		ast.Patch(node, &ast.ChainNode{Node: m})
	}
}

// checkConstantArgs checks the arguments of localTime and businessHours
// written as constants: a zone or a business-hours spec that cannot work
// would otherwise fail every evaluation, and park every event.
func checkConstantArgs(src string, node ast.Node) error {
	v := &argChecker{}
	ast.Walk(&node, v)
	if v.err != nil {
		return v.err.Bind(file.NewSource(src))
	}
	return nil
}

type argChecker struct{ err *file.Error }

func (v *argChecker) Visit(node *ast.Node) {
	call, ok := (*node).(*ast.CallNode)
	if !ok || v.err != nil {
		return
	}
	callee, ok := call.Callee.(*ast.IdentifierNode)
	if !ok || (callee.Value != "localTime" && callee.Value != "businessHours") {
		return
	}
	for i, arg := range call.Arguments {
		s, ok := arg.(*ast.StringNode)
		if !ok {
			continue
		}
		var err error
		switch i {
		case 0:
			_, err = comm100.Location(s.Value)
		case 1:
			if callee.Value == "businessHours" {
				_, err = parseHours(s.Value)
			}
		}
		if err != nil {
			v.err = &file.Error{Location: arg.Location(), Message: fmt.Sprintf("%s: %v", callee.Value, err)}
			return
		}
	}
}

// isEnv reports whether n is $env, whose fields are the rule's names: a
// misspelt one stays an error when the rules load.
func isEnv(n ast.Node) bool {
	id, ok := n.(*ast.IdentifierNode)
	return ok && id.Value == "$env"
}

// machines are reused between evaluations: a VM is large, and Run resets it.
var machines = sync.Pool{New: func() any { return &vm.VM{} }}

// run evaluates a program with a memory budget.
func run(p *vm.Program, e *env) (any, error) {
	m := machines.Get().(*vm.VM)
	defer machines.Put(m)
	m.MemoryBudget = memoryBudget
	return m.Run(p, e.vars)
}

func isEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
	"go.yaml.in/yaml/v3"

	"github.com/comm100bot/bot/internal/actions"
	"github.com/comm100bot/bot/internal/job"
)

// IsRuleFile reports whether a path is read as a rule file: a *.yaml or
// *.yml file that is not hidden (an editor's lock or backup, .#rules.yaml).
func IsRuleFile(path string) bool {
	if strings.HasPrefix(filepath.Base(path), ".") {
		return false
	}
	ext := strings.ToLower(filepath.Ext(path))
	return ext == ".yaml" || ext == ".yml"
}

// LoadDir loads and compiles every rule file under dir (sub-folders included,
// "testdata" folders, dot-folders and dot-files skipped). It reports every problem found,
// as an ErrorList, not only the first. Actions are checked against catalog,
// and expressions of rules that listen only to events of a known shape
// against that shape; shapes may be nil.
func LoadDir(dir string, catalog *actions.Catalog, shapes *Shapes) (*Engine, error) {
	// A dir that is a symbolic link (to a mounted volume, a release's
	// folder) is walked where it points; the files keep dir in their paths.
	root := dir
	if resolved, err := filepath.EvalSymlinks(dir); err == nil {
		root = resolved
	}
	var paths []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if IsRuleFile(path) {
			if rel, err := filepath.Rel(root, path); err == nil {
				path = filepath.Join(dir, rel)
			}
			paths = append(paths, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read rules dir: %w", err)
	}
	slices.Sort(paths)
	files := make([]SourceFile, 0, len(paths))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read rule file: %w", err)
		}
		files = append(files, SourceFile{Path: p, Data: b})
	}
	return Load(files, catalog, shapes)
}

// SourceFile is one rule file's path and content.
type SourceFile struct {
	Path string
	Data []byte
}

// Load compiles rule files into an engine, or returns every problem found.
// catalog and shapes are as for LoadDir.
func Load(files []SourceFile, catalog *actions.Catalog, shapes *Shapes) (*Engine, error) {
	var errs ErrorList
	var all []*Rule
	seen := map[string]*Rule{}
	cache := map[compileKey]compiled{}
	for _, f := range files {
		l := &fileLoader{path: f.Path, src: f.Data, catalog: catalog, shapes: shapes, errs: &errs, cache: cache}
		for _, r := range l.load() {
			if prev, dup := seen[r.Name]; dup {
				errs = append(errs, &Error{File: r.File, Line: r.Line, Col: r.Col, Rule: r.Name,
					Msg: fmt.Sprintf("duplicate rule name; first defined at %s:%d", prev.File, prev.Line)})
				continue
			}
			seen[r.Name] = r
			all = append(all, r)
		}
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	return newEngine(all, len(files)), nil
}

type fileLoader struct {
	path    string
	src     []byte
	lines   []string
	catalog *actions.Catalog
	shapes  *Shapes
	errs    *ErrorList
	// typed are the environments of the rule being loaded, for type checks.
	typed  []map[string]any
	topics []string
	// cache holds the expressions compiled so far in this load: rules repeat
	// small expressions (data.visitor.name) a lot, and programs are immutable.
	cache map[compileKey]compiled
}

type compileKey struct {
	src    string
	asBool bool
	topics string // the typed environments checked against
}

type compiled struct {
	prog *vm.Program
	err  error
}

func (l *fileLoader) errorf(n *yaml.Node, rule, format string, args ...any) {
	e := &Error{File: l.path, Rule: rule, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	*l.errs = append(*l.errs, e)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError reports a YAML syntax error, its message after prefix. The
// parser names the line, but not the column; it names no line for a fault
// on the first.
func (l *fileLoader) syntaxError(err error, prefix string) {
	e := &Error{File: l.path, Line: 1, Col: 1, Msg: prefix + strings.TrimPrefix(err.Error(), "yaml: ")}
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Msg = prefix + m[2]
	}
	*l.errs = append(*l.errs, e)
}

func (l *fileLoader) load() []*Rule {
	l.lines = strings.Split(string(l.src), "\n")
	dec := yaml.NewDecoder(bytes.NewReader(l.src))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file holds no rules
		}
		l.syntaxError(err, "")
		return nil
	}
	if len(doc.Content) == 0 {
		return nil
	}
	// Any further document would be dropped without a word; empty ones (a
	// file that ends in ---) are nothing.
more:
	for {
		var next yaml.Node
		switch err := dec.Decode(&next); {
		case errors.Is(err, io.EOF):
			break more
		case err != nil:
			l.syntaxError(err, "after ---: ")
			break more
		case len(next.Content) > 0 && !(next.Content[0].Kind == yaml.ScalarNode && next.Content[0].Tag == "!!null"):
			l.errorf(next.Content[0], "", "a second YAML document (after ---): a rule file holds one; put these rules in the first list, or in a file of their own")
			break more
		}
	}
	root := doc.Content[0]
	fields := l.mapping(root, "", "rules")
	if fields == nil {
		return nil
	}
	list := fields["rules"]
	if list == nil {
		l.errorf(root, "", `want a "rules:" list`)
		return nil
	}
	if list.Kind != yaml.SequenceNode {
		l.errorf(list, "", `"rules" must be a list`)
		return nil
	}
	var out []*Rule
	for _, n := range list.Content {
		if r := l.rule(n); r != nil {
			out = append(out, r)
		}
	}
	return out
}

// mapping returns the values of a mapping node by key, reporting keys not in
// allowed and duplicate keys. It returns nil if n is not a mapping.
func (l *fileLoader) mapping(n *yaml.Node, rule string, allowed ...string) map[string]*yaml.Node {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		l.errorf(n, rule, "want a mapping with keys %s", strings.Join(allowed, ", "))
		return nil
	}
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !slices.Contains(allowed, k.Value) {
			l.errorf(k, rule, "unknown key %q; known keys: %s", k.Value, strings.Join(allowed, ", "))
			continue
		}
		if _, dup := out[k.Value]; dup {
			l.errorf(k, rule, "key %q is given twice", k.Value)
			continue
		}
		out[k.Value] = v
	}
	return out
}

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func (l *fileLoader) str(n *yaml.Node, rule, key string) (string, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		l.errorf(n, rule, "%s: want a string", key)
		return "", false
	}
	return n.Value, true
}

var ruleKeys = []string{"name", "description", "on", "when", "actions", "enabled", "tests"}

func (l *fileLoader) rule(n *yaml.Node) *Rule {
	n = resolve(n)
	r := &Rule{File: l.path, Line: n.Line, Col: n.Column, Enabled: true}
	// Find the name first so every message about the rule can carry it.
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "name" && n.Content[i+1].Kind == yaml.ScalarNode {
				r.Name = n.Content[i+1].Value
			}
		}
	}
	fields := l.mapping(n, r.Name, ruleKeys...)
	if fields == nil {
		return nil
	}
	before := len(*l.errs)
	if v := fields["name"]; v == nil {
		l.errorf(n, "", `rule has no "name"`)
	} else if s, ok := l.str(v, "", "name"); ok {
		if strings.TrimSpace(s) == "" {
			l.errorf(v, "", "name: must not be empty")
		}
	}
	if v := fields["description"]; v != nil {
		r.Description, _ = l.str(v, r.Name, "description")
	}
	if v := fields["enabled"]; v != nil {
		if b, err := strconv.ParseBool(resolve(v).Value); err != nil || resolve(v).Kind != yaml.ScalarNode {
			l.errorf(v, r.Name, "enabled: want true or false")
		} else {
			r.Enabled = b
		}
	}
	if v := fields["on"]; v == nil {
		l.errorf(n, r.Name, `rule has no "on"; say which events it listens to, such as comm100.chat.ended`)
	} else {
		r.On = l.patterns(v, r.Name)
	}
	l.typed = l.shapes.envsFor(r.On)
	l.topics = nil
	if l.typed != nil {
		l.topics = r.On
	}
	if v := fields["when"]; v != nil {
		if src, ok := l.str(v, r.Name, "when"); ok {
			r.WhenSrc = src
			r.When = l.compileAt(v, r.Name, "when", src, 0, true)
		}
	}
	if v := fields["actions"]; v == nil {
		l.errorf(n, r.Name, `rule has no "actions"`)
	} else if v = resolve(v); v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
		l.errorf(v, r.Name, "actions: want a list of one or more actions")
	} else {
		for i, an := range v.Content {
			if a := l.action(an, r.Name, i); a != nil {
				r.Actions = append(r.Actions, a)
			}
		}
	}
	if v := fields["tests"]; v != nil {
		r.Tests = l.tests(v, r.Name)
	}
	if len(*l.errs) > before {
		return nil
	}
	return r
}

func (l *fileLoader) patterns(n *yaml.Node, rule string) []string {
	n = resolve(n)
	var nodes []*yaml.Node
	switch n.Kind {
	case yaml.ScalarNode:
		nodes = []*yaml.Node{n}
	case yaml.SequenceNode:
		nodes = n.Content
	default:
		l.errorf(n, rule, "on: want a pattern or a list of patterns")
		return nil
	}
	if len(nodes) == 0 {
		l.errorf(n, rule, "on: want at least one pattern")
	}
	var out []string
	for _, pn := range nodes {
		p, ok := l.str(pn, rule, "on")
		if !ok {
			continue
		}
		if err := checkPattern(p); err != nil {
			l.errorf(pn, rule, "on: %v", err)
			continue
		}
		out = append(out, p)
	}
	return out
}

var actionKeys = []string{"do", "with", "after", "key", "if", "priority", "dry_run", "emit"}

func (l *fileLoader) action(n *yaml.Node, rule string, index int) *Step {
	fields := l.mapping(n, rule, actionKeys...)
	if fields == nil {
		return nil
	}
	a := &Step{Index: index, Line: n.Line}
	doNode := fields["do"]
	if doNode == nil {
		l.errorf(n, rule, `action %d has no "do"`, index+1)
		return nil
	}
	var ok bool
	if a.Do, ok = l.str(doNode, rule, "do"); !ok {
		return nil
	}
	spec, known := l.catalog.Lookup(a.Do)
	if known {
		a.spec = spec
	}
	if !known {
		l.errorf(doNode, rule, "unknown action %q; known actions: %s", a.Do, strings.Join(l.catalog.Names(), ", "))
	}
	given := map[string]bool{}
	if w := fields["with"]; w != nil {
		w = resolve(w)
		if w.Kind != yaml.MappingNode {
			l.errorf(w, rule, "with: want a mapping of parameters")
		} else {
			a.With = mapValue{}
			for i := 0; i+1 < len(w.Content); i += 2 {
				k, v := w.Content[i], w.Content[i+1]
				if given[k.Value] {
					l.errorf(k, rule, "%s: parameter %q is given twice", a.Do, k.Value)
					continue
				}
				given[k.Value] = true
				if known {
					p, ok := spec.Param(k.Value)
					if !ok {
						l.errorf(k, rule, "%s: unknown parameter %q; it takes: %s", a.Do, k.Value, paramNames(spec))
						continue
					}
					if err := p.Check(staticValue(v)); err != nil {
						l.errorf(v, rule, "%s: parameter %q: %v", a.Do, k.Value, err)
					}
				}
				if val := l.value(v, rule, "with."+k.Value); val != nil {
					a.With[k.Value] = val
				}
			}
		}
	}
	if known {
		for _, p := range spec.Params {
			if p.Required && !given[p.Name] {
				l.errorf(doNode, rule, "%s: missing required parameter %q", a.Do, p.Name)
			}
		}
	}
	if v := fields["after"]; v != nil {
		if s, ok := l.str(v, rule, "after"); ok {
			d, err := time.ParseDuration(s)
			if err != nil || d < 0 {
				l.errorf(v, rule, "after: %q is not a duration; write it like 90s, 30m or 2h", s)
			} else {
				a.After = d
			}
		}
	}
	if v := fields["key"]; v != nil {
		if s, ok := l.str(v, rule, "key"); ok {
			if t, ok := l.template(v, rule, "key", s).(*template); ok {
				a.Key = t
			} else if s != "" {
				a.Key = &template{parts: []part{{text: s}}}
			}
		}
	}
	if v := fields["if"]; v != nil {
		if src, ok := l.str(v, rule, "if"); ok {
			a.IfSrc = src
			a.If = l.compileAt(v, rule, "if", src, 0, true)
		}
	}
	if v := fields["priority"]; v != nil {
		if s, ok := l.str(v, rule, "priority"); ok {
			if s != job.PriorityHigh && s != job.PriorityNormal && s != job.PriorityLow {
				l.errorf(v, rule, "priority: want high, normal or low, got %q", s)
			}
			a.Priority = s
		}
	}
	a.DryRun = l.boolean(fields["dry_run"], rule, "dry_run")
	a.Emit = l.boolean(fields["emit"], rule, "emit")
	return a
}

// boolean reads an optional true/false value.
func (l *fileLoader) boolean(n *yaml.Node, rule, key string) bool {
	if n == nil {
		return false
	}
	b, err := strconv.ParseBool(resolve(n).Value)
	if err != nil || resolve(n).Kind != yaml.ScalarNode {
		l.errorf(n, rule, "%s: want true or false", key)
	}
	return b
}

func paramNames(a *actions.Action) string {
	names := make([]string, len(a.Params))
	for i, p := range a.Params {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}

// staticValue is a "with" value as far as it is known before the rule runs:
// {{ templates }} become actions.Deferred, for the catalogue's type checks.
func staticValue(n *yaml.Node) any {
	n = resolve(n)
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			m[n.Content[i].Value] = staticValue(n.Content[i+1])
		}
		return m
	case yaml.SequenceNode:
		list := make([]any, len(n.Content))
		for i, c := range n.Content {
			list[i] = staticValue(c)
		}
		return list
	case yaml.ScalarNode:
		if n.Tag == "!!str" {
			if strings.Contains(n.Value, "{{") {
				return actions.Deferred{}
			}
			return n.Value
		}
		var v any
		if n.Decode(&v) == nil {
			return v
		}
	}
	return actions.Deferred{} // reported by value
}

// value compiles a "with" value: strings become templates, mappings and
// lists are compiled element by element, other scalars are literals.
func (l *fileLoader) value(n *yaml.Node, rule, key string) value {
	n = resolve(n)
	switch n.Kind {
	case yaml.MappingNode:
		m := mapValue{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if v := l.value(n.Content[i+1], rule, key+"."+k); v != nil {
				m[k] = v
			}
		}
		return m
	case yaml.SequenceNode:
		list := make(listValue, 0, len(n.Content))
		for i, c := range n.Content {
			if v := l.value(c, rule, fmt.Sprintf("%s[%d]", key, i)); v != nil {
				list = append(list, v)
			}
		}
		return list
	case yaml.ScalarNode:
		if n.Tag == "!!str" {
			return l.template(n, rule, key, n.Value)
		}
		var v any
		if err := n.Decode(&v); err != nil {
			l.errorf(n, rule, "%s: %v", key, err)
			return nil
		}
		return literal{v}
	}
	l.errorf(n, rule, "%s: unsupported value", key)
	return nil
}

// template compiles a string with {{ expr }} parts; a plain string is a literal.
func (l *fileLoader) template(n *yaml.Node, rule, key, s string) value {
	texts, spans, err := splitTemplate(s)
	if err != nil {
		l.errorf(n, rule, "%s: %v", key, err)
		return nil
	}
	if len(spans) == 0 {
		return literal{s}
	}
	t := &template{}
	failed := false
	for i, sp := range spans {
		if texts[i] != "" {
			t.parts = append(t.parts, part{text: texts[i]})
		}
		prog := l.compileAt(n, rule, key, sp.src, sp.offset, false)
		if prog == nil {
			failed = true
			continue
		}
		t.parts = append(t.parts, part{prog: prog, src: sp.src})
	}
	if last := texts[len(texts)-1]; last != "" {
		t.parts = append(t.parts, part{text: last})
	}
	if failed {
		return nil
	}
	t.whole = len(t.parts) == 1 && t.parts[0].prog != nil
	return t
}

// compileAt compiles src, found at rune offset within scalar n, and reports a
// compile error at its exact place in the file.
func (l *fileLoader) compileAt(n *yaml.Node, rule, key, src string, offset int, asBool bool) *vm.Program {
	if strings.TrimSpace(src) == "" {
		l.errorf(n, rule, "%s: empty expression", key)
		return nil
	}
	ck := compileKey{src: src, asBool: asBool, topics: strings.Join(l.topics, ",")}
	c, ok := l.cache[ck]
	if !ok {
		c.prog, c.err = compile(src, asBool, l.typed)
		l.cache[ck] = c
	}
	p, err := c.prog, c.err
	if err == nil {
		return p
	}
	e := &Error{File: l.path, Rule: rule, Line: n.Line, Col: n.Column}
	var fe *file.Error
	if errors.As(err, &fe) {
		e.Msg = fmt.Sprintf("%s: %s", key, l.explain(fe.Message))
		e.Line, e.Col = l.exprPos(n, offset, fe.Line, fe.Column)
	} else {
		e.Msg = fmt.Sprintf("%s: %v", key, err)
	}
	*l.errs = append(*l.errs, e)
	return nil
}

var noField = regexp.MustCompile(`^type (\S+) has no field (\w+)$`)

// explain rewrites type-check messages about the event shapes in the user's
// terms.
func (l *fileLoader) explain(msg string) string {
	if m := noField.FindStringSubmatch(msg); m != nil && len(l.topics) > 0 && l.shapes.isShapeType(m[1]) {
		return fmt.Sprintf("%s events have no field %q", strings.Join(l.topics, " and "), m[2])
	}
	return msg
}

// exprPos maps a position inside an expression (1-based line, 0-based
// column) found at rune offset of scalar n to a file line and column.
func (l *fileLoader) exprPos(n *yaml.Node, offset, line, col int) (int, int) {
	if line < 1 {
		line = 1
	}
	switch n.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		// Block scalars start on the line after the indicator, and their
		// indentation is that of their first line.
		fl := n.Line + line
		indent := 0
		if n.Line < len(l.lines) {
			first := l.lines[n.Line]
			indent = len(first) - len(strings.TrimLeft(first, " \t"))
		}
		if line == 1 {
			return fl, indent + offset + col + 1
		}
		return fl, indent + col + 1
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		if line == 1 {
			return n.Line, n.Column + 1 + offset + col
		}
	default:
		if line == 1 {
			return n.Line, n.Column + offset + col
		}
	}
	return n.Line + line - 1, col + 1
}

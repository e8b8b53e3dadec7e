package rules

import (
	"fmt"
	"strings"
	"time"

	"github.com/comm100bot/bot/internal/event"
	"github.com/comm100bot/bot/internal/job"
)

// Engine is a compiled, immutable set of rules, indexed by event topic. It is
// safe for concurrent use; a reload builds a new Engine and swaps it in.
type Engine struct {
	rules []*Rule
	index index
	files int
}

func newEngine(rules []*Rule, files int) *Engine {
	e := &Engine{rules: rules, files: files}
	for i, r := range rules {
		if !r.Enabled {
			continue
		}
		for _, p := range r.On {
			e.index.add(p, i)
		}
	}
	return e
}

// Rules returns the rules in file order.
func (e *Engine) Rules() []*Rule { return e.rules }

// Files returns how many rule files the engine was loaded from.
func (e *Engine) Files() int { return e.files }

// Outcome is what one rule made of one event.
type Outcome struct {
	Rule *Rule
	// Candidate is true when one of the rule's patterns matches the event.
	Candidate bool
	// Matched is true when the rule is a candidate and its condition holds.
	Matched bool
	// Reason says why a rule did not match, or why an action was skipped.
	Reason string
	// Jobs are the rendered jobs of a matched rule.
	Jobs []job.Job
	// Err is an evaluation error (the rule is then treated as not matched).
	Err error
}

// EvalError is a rule that could not be evaluated against an event: its
// condition failed to run, or an action could not be rendered. The rule then
// produces no jobs for the event.
type EvalError struct {
	Rule string
	Err  error
}

func (e *EvalError) Error() string { return fmt.Sprintf("rule %q: %v", e.Rule, e.Err) }

func (e *EvalError) Unwrap() error { return e.Err }

// Match returns the jobs the event produces, and the evaluation errors of
// rules that could not be evaluated (each an *EvalError; those rules produce
// no jobs).
func (e *Engine) Match(ev *event.Event, now time.Time) ([]job.Job, []error) {
	var buf [16]int
	cands := e.index.match(ev.Topic(), buf[:0])
	if len(cands) == 0 {
		return nil, nil
	}
	env := newEnv(ev, now)
	var jobs []job.Job
	var errs []error
	for _, i := range cands {
		o := e.evaluate(e.rules[i], ev, env, now)
		if o.Err != nil {
			errs = append(errs, o.Err)
			continue
		}
		jobs = append(jobs, o.Jobs...)
	}
	return jobs, errs
}

// Explain evaluates every rule against the event and says what each made of
// it. It is for `bot rules eval` and rule tests; Match is the fast path.
func (e *Engine) Explain(ev *event.Event, now time.Time) []Outcome {
	env := newEnv(ev, now)
	topic := ev.Topic()
	out := make([]Outcome, 0, len(e.rules))
	for _, r := range e.rules {
		cand := r.listensTo(topic)
		switch {
		case !r.Enabled:
			out = append(out, Outcome{Rule: r, Candidate: cand, Reason: "rule is disabled"})
		case !cand:
			out = append(out, Outcome{Rule: r, Reason: fmt.Sprintf("listens to %v, not %s", r.On, topic)})
		default:
			o := e.evaluate(r, ev, env, now)
			o.Candidate = true
			out = append(out, o)
		}
	}
	return out
}

func (e *Engine) evaluate(r *Rule, ev *event.Event, env *env, now time.Time) Outcome {
	o := Outcome{Rule: r}
	if r.When != nil {
		v, err := run(r.When, env)
		if err != nil {
			o.Err = &EvalError{Rule: r.Name, Err: fmt.Errorf("when: %w", err)}
			o.Reason = "when: " + err.Error()
			return o
		}
		if b, _ := v.(bool); !b {
			o.Reason = "when is false: " + r.WhenSrc
			return o
		}
	}
	o.Matched = true
	for _, a := range r.Actions {
		if a.If != nil {
			v, err := run(a.If, env)
			if err != nil {
				o.Err = &EvalError{Rule: r.Name, Err: fmt.Errorf("action %d: if: %w", a.Index+1, err)}
				return o
			}
			if b, _ := v.(bool); !b {
				continue
			}
		}
		job, err := a.job(r, ev, env, now)
		if err != nil {
			o.Err = &EvalError{Rule: r.Name, Err: fmt.Errorf("action %d (%s): %w", a.Index+1, a.Do, err)}
			return o
		}
		o.Jobs = append(o.Jobs, job)
	}
	return o
}

func (a *Step) job(r *Rule, ev *event.Event, env *env, now time.Time) (job.Job, error) {
	params := map[string]any{}
	if a.With != nil {
		p, err := a.With.render(env)
		if err != nil {
			return job.Job{}, fmt.Errorf("with.%w", err)
		}
		params = p.(map[string]any)
	}
	j := job.Job{
		ID:       job.ID(ev.ID, r.Name, a.Index),
		EventID:  ev.ID,
		Rule:     r.Name,
		Index:    a.Index,
		Action:   a.Do,
		Params:   params,
		Priority: a.Priority,
		DryRun:   a.DryRun,
		Emit:     a.Emit,
		Created:  now.UTC(),
	}
	if a.After > 0 {
		j.RunAt = now.Add(a.After).UTC()
	}
	if a.Key != nil {
		k, err := a.Key.render(env)
		if err != nil {
			return job.Job{}, fmt.Errorf("key: %w", err)
		}
		// Text, as a template inside text renders: nil is nothing, a time
		// is RFC 3339 (a key that is one whole {{ }} keeps the value).
		var b strings.Builder
		writeValue(&b, k)
		j.Key = b.String()
	}
	return j, nil
}

// listensTo reports whether one of r's patterns matches topic.
func (r *Rule) listensTo(topic string) bool {
	for _, p := range r.On {
		if matchPattern(p, topic) {
			return true
		}
	}
	return false
}

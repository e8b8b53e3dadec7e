package rules

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/comm100bot/bot/internal/event"
	"github.com/comm100bot/bot/internal/job"
)

// Decoder turns a webhook body posted to a source into the canonical event,
// as ingest would. Tests whose event is a raw webhook body name the source.
type Decoder func(source string, body []byte, received time.Time) (*event.Event, error)

// TestResult is the outcome of one inline test.
type TestResult struct {
	Rule     *Rule
	Test     *Test
	Failures []string
}

// Passed reports whether the test passed.
func (r TestResult) Passed() bool { return len(r.Failures) == 0 }

// RunTests runs every inline test of every rule. A test feeds its event to
// the whole engine and compares the actions of its own rule with the
// expected ones, in order; expected params are compared only where given.
func (e *Engine) RunTests(decode Decoder) []TestResult {
	var out []TestResult
	for _, r := range e.rules {
		for _, t := range r.Tests {
			out = append(out, TestResult{Rule: r, Test: t, Failures: e.runTest(r, t, decode)})
		}
	}
	return out
}

func (e *Engine) runTest(r *Rule, t *Test, decode Decoder) []string {
	if t.EventErr != nil {
		return []string{t.EventErr.Error()}
	}
	ev, err := testEvent(t, decode)
	if err != nil {
		return []string{err.Error()}
	}
	now := t.Now
	if now.IsZero() {
		now = ev.Time
	}
	var got []job.Job
	outcomes := e.Explain(ev, now)
	if !r.Enabled {
		// The test of a disabled rule runs as if the rule were enabled, so
		// that it can be enabled again knowing it works.
		outcomes = nil
		if r.listensTo(ev.Topic()) {
			outcomes = []Outcome{e.evaluate(r, ev, newEnv(ev, now), now)}
		}
	}
	for _, o := range outcomes {
		if o.Rule != r {
			continue
		}
		if o.Err != nil {
			return []string{fmt.Sprintf("evaluation failed: %v", o.Err)}
		}
		got = o.Jobs
	}
	var fails []string
	if len(got) != len(t.Expect) {
		fails = append(fails, fmt.Sprintf("got actions %v, want %v", jobNames(got), expectNames(t.Expect)))
		return fails
	}
	for i, want := range t.Expect {
		j := got[i]
		if j.Action != want.Do {
			fails = append(fails, fmt.Sprintf("action %d: got %s, want %s", i+1, j.Action, want.Do))
			continue
		}
		if err := r.CheckJob(j); err != nil {
			fails = append(fails, fmt.Sprintf("action %d (%s): %v", i+1, j.Action, err))
		}
		for k, wv := range want.With {
			gv, ok := j.Params[k]
			if !ok {
				fails = append(fails, fmt.Sprintf("action %d (%s): param %q not rendered, want %v", i+1, j.Action, k, wv))
				continue
			}
			if !sameValue(gv, wv) {
				fails = append(fails, fmt.Sprintf("action %d (%s): param %q: got %s, want %s", i+1, j.Action, k, show(gv), show(wv)))
			}
		}
	}
	return fails
}

// testEvent builds the test's event: a raw webhook body decoded as its
// source would, or a canonical event given as is.
func testEvent(t *Test, decode Decoder) (*event.Event, error) {
	raw, err := json.Marshal(t.Event)
	if err != nil {
		return nil, fmt.Errorf("event: %w", err)
	}
	if t.Source != "" {
		if decode == nil {
			return nil, fmt.Errorf("event: no decoder for source %q", t.Source)
		}
		received := t.Now
		if received.IsZero() {
			received = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
		}
		ev, err := decode(t.Source, raw, received)
		if err != nil {
			return nil, fmt.Errorf("event: as a %s webhook: %w", t.Source, err)
		}
		return ev, nil
	}
	var ev event.Event
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, fmt.Errorf("event: %w", err)
	}
	if ev.Source == "" || ev.Type == "" {
		return nil, fmt.Errorf(`event: a canonical event needs "source" and "type"; for a raw webhook body, set the test's "source"`)
	}
	if ev.ID == "" {
		ev.ID = "test"
	}
	return &ev, nil
}

// sameValue compares a rendered value with an expected one from YAML,
// treating numbers of any type as equal when their values are.
func sameValue(got, want any) bool {
	gj, err1 := json.Marshal(got)
	wj, err2 := json.Marshal(want)
	if err1 != nil || err2 != nil {
		return reflect.DeepEqual(got, want)
	}
	var g, w any
	_ = json.Unmarshal(gj, &g)
	_ = json.Unmarshal(wj, &w)
	if gs, ok := g.(string); ok {
		if ws, ok := w.(string); ok {
			return strings.TrimRight(gs, "\n") == strings.TrimRight(ws, "\n")
		}
	}
	return reflect.DeepEqual(g, w)
}

func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func jobNames(js []job.Job) []string {
	out := make([]string, len(js))
	for i, j := range js {
		out[i] = j.Action
	}
	return out
}

func expectNames(es []Expectation) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Do
	}
	return out
}

// CheckJob checks a job of r's rendered params as the pool would before it
// carries the job out: a job a test renders and the pool would refuse (an
// id that is not an id, a required text left empty) fails the test, and
// bot rules eval says so.
func (r *Rule) CheckJob(j job.Job) error {
	for _, st := range r.Actions {
		if st.Index == j.Index && st.spec != nil {
			if err := st.spec.Check(j.Params); err != nil {
				return fmt.Errorf("the pool would refuse the rendered params: %w", err)
			}
		}
	}
	return nil
}

package rules

import (
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/comm100bot/bot/internal/actions"
)

// Rule is one compiled rule.
type Rule struct {
	Name        string
	Description string
	// File and Line locate the rule for messages.
	File string
	Line int
	Col  int
	// On are the "source.type" patterns the rule listens to.
	On []string
	// When is the optional condition; nil matches every event.
	When    *vm.Program
	WhenSrc string
	Enabled bool
	Actions []*Step
	Tests   []*Test
}

// Step is one compiled entry of a rule's actions list: the action to do
// (an actions.Action of the catalog), with its parameters, delay, key and
// condition.
type Step struct {
	Index int
	Do    string
	With  mapValue
	// After delays the job; 0 runs it at once.
	After time.Duration
	// Key groups delayed jobs for schedule.cancel; nil when not set.
	Key *template
	// If is the optional per-action condition.
	If       *vm.Program
	IfSrc    string
	Priority string
	DryRun   bool
	// Emit publishes a bot.action.completed event with the result.
	Emit bool
	Line int
	// spec is the catalogue's action, which checks the rendered params.
	spec *actions.Action
}

// Test is one inline test of a rule.
type Test struct {
	Name string
	// EventFile is the path of a JSON event file, relative to the rule file;
	// empty when Event is inline.
	EventFile string
	// Event is the raw inline event or the file's content, decoded later.
	Event map[string]any
	// EventErr is why the event file could not be read or decoded: a
	// failure of the test, not an error of the rule file, so that the
	// rules run where their tests' files are not deployed.
	EventErr error
	// Source is the source name to normalize the event as; empty means the
	// event is already canonical.
	Source string
	// Now fixes the clock for the test; zero means the event's time.
	Now time.Time
	// Expect lists the actions the event must produce, in order.
	Expect []Expectation
	Line   int
}

// Expectation is one expected action, with optional expected rendered params.
type Expectation struct {
	Do   string
	With map[string]any
}

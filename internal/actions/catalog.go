package actions

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
)

// Param declares one "with" parameter of an action, for the rule checker and
// the documentation.
type Param struct {
	Name     string
	Required bool
	Doc      string
}

// Action is one kind of thing a rule can do.
type Action struct {
	// Name is what rules write after "do:".
	Name string
	Doc  string
	// Params the action accepts; the rule checker refuses others.
	Params []Param
	// Comm100 says the action calls the Comm100 API, so it runs dry when no
	// credentials are configured.
	Comm100 bool
	// Run carries out one job. It may be called from many goroutines at once.
	// An error is classified by [Retryable]; wrap it with [Permanent] to stop
	// retries.
	Run func(ctx context.Context, rt *Runtime, p Params) (Result, error)
}

// Result is what a completed action reports, such as {"ticket_id": "1001"}.
type Result map[string]any

// Runtime is what actions run with.
type Runtime struct {
	// Comm100 is the API client; nil when running dry.
	Comm100 Comm100
	// HTTP carries out http.request actions.
	HTTP *HTTPCaller
	// Events publishes follow-up events for event.emit.
	Events EventPublisher
	// Schedules cancels pending delayed jobs for schedule.cancel.
	Schedules Canceller
	// TicketFields resolves ticket custom field names to ids, with the
	// field list cached across jobs; nil resolves without a cache.
	TicketFields *TicketFieldIDs
	Log          *slog.Logger
}

// Canceller cancels the pending delayed jobs of a key.
type Canceller interface {
	Cancel(ctx context.Context, key string) (uint64, error)
}

// Catalog is the set of actions rules can use.
type Catalog struct {
	actions map[string]*Action
}

// NewCatalog returns the built-in actions.
func NewCatalog() *Catalog {
	c := &Catalog{actions: map[string]*Action{}}
	for _, a := range builtins() {
		c.actions[a.Name] = a
	}
	return c
}

// Lookup returns the action called name.
func (c *Catalog) Lookup(name string) (*Action, bool) {
	a, ok := c.actions[name]
	return a, ok
}

// Names returns every action name, sorted.
func (c *Catalog) Names() []string { return slices.Sorted(maps.Keys(c.actions)) }

// Param returns the declared parameter called name.
func (a *Action) Param(name string) (Param, bool) {
	for _, p := range a.Params {
		if p.Name == name {
			return p, true
		}
	}
	return Param{}, false
}

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent wraps err so that the pool does not retry it.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// Params are the rendered "with" values of a job.
type Params map[string]any

// String returns the parameter as a string ("" when absent).
func (p Params) String(name string) string {
	switch v := p[name].(type) {
	case nil:
		return ""
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return fmt.Sprint(v)
	}
}

// Require returns the parameter as a non-empty string, or a permanent error.
func (p Params) Require(name string) (string, error) {
	s := p.String(name)
	if s == "" {
		return "", Permanent(fmt.Errorf("param %q is required", name))
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
		return nil, Permanent(fmt.Errorf("param %q: want an object, got %T", name, v))
	}
}

// Strings returns the parameter as a list of strings (nil when absent).
func (p Params) Strings(name string) ([]string, error) {
	switch v := p[name].(type) {
	case nil:
		return nil, nil
	case string:
		return []string{v}, nil
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			out = append(out, fmt.Sprint(e))
		}
		return out, nil
	case []string:
		return v, nil
	default:
		return nil, Permanent(fmt.Errorf("param %q: want a list, got %T", name, v))
	}
}

package actions

import (
	"context"
	"log/slog"
	"maps"
	"slices"

	"github.com/comm100bot/bot/internal/event"
)

// Action is one kind of thing a rule can do: an entry of the catalogue.
type Action struct {
	// Name is what rules write after "do:".
	Name string
	Doc  string
	// Params the action accepts, with their types; see [Action.Check].
	Params []Param
	// Comm100 says the action calls the Comm100 API: it spends the shared
	// budget, pauses with the pool, and runs dry when no credentials are
	// configured.
	Comm100 bool
	// Target, if set, names the outside system a job's call goes to, whose
	// own budget it may wait for (http.request: its URL's host:port); ""
	// for none. The jobs of one target hold at most half of a lane's
	// workers (see [lane]), so one system over its budget, or slow, holds
	// back no other.
	Target func(p Params) string
	// Run carries out one job whose params passed Check. It may be called
	// from many goroutines at once. An error is classified by [Retryable];
	// wrap it with [Permanent] to stop retries.
	Run func(ctx context.Context, rt *Runtime, p Params) (Result, error)
}

// Param returns the declared parameter called name.
func (a *Action) Param(name string) (Param, bool) {
	for _, p := range a.Params {
		if p.Name == name {
			return p, true
		}
	}
	return Param{}, false
}

// Result is what a completed action reports, such as {"ticket_id": "1001"}.
type Result map[string]any

// Runtime is what actions run with.
type Runtime struct {
	// Comm100 is the API client; nil when running dry.
	Comm100 Comm100
	// HTTP carries out http.request actions.
	HTTP *HTTPCaller
	// Events publishes follow-up events: event.emit, and the results of
	// actions whose rule asked for them.
	Events EventPublisher
	// Schedules cancels pending delayed jobs for schedule.cancel.
	Schedules Canceller
	// TicketFields resolves ticket custom field names to ids, with the
	// field list cached across jobs; nil resolves without a cache.
	TicketFields *TicketFieldIDs
	Log          *slog.Logger

	// cancelled records a delayed job that schedule.cancel removes (set by
	// the pool on the runtime of each run; nil leaves no record).
	cancelled func(ctx context.Context, jobID string) error
}

// EventPublisher publishes events onto the EVENTS stream.
type EventPublisher interface {
	Publish(ctx context.Context, ev *event.Event) (duplicate bool, err error)
}

// Canceller cancels the pending delayed jobs of a key.
type Canceller interface {
	// Cancel removes the pending delayed jobs of key, calling settle (if
	// not nil) with the id of each before it is removed, and returns how
	// many it removed.
	Cancel(ctx context.Context, key string, settle func(ctx context.Context, jobID string) error) (uint64, error)
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

package actions

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/comm100bot/bot/internal/comm100"
)

// testPolicy is the default policy without jitter, so delays are exact.
func testPolicy() Policy {
	cfg := Config{}
	cfg.Defaults()
	p := cfg.Policy()
	p.InProcess.Jitter, p.Redelivery.Jitter, p.Outage.Jitter = -1, -1, -1
	return p
}

func apiErr(status int, msg string, retryAfter time.Duration) error {
	return fmt.Errorf("create ticket: %w", &comm100.APIError{Method: "POST", Path: "ticketing/tickets", Status: status, Message: msg, RetryAfter: retryAfter})
}

func TestDecide(t *testing.T) {
	now := time.Date(2026, 3, 9, 12, 0, 0, 0, time.UTC)
	bare403 := apiErr(http.StatusForbidden, "", 0)
	unavailable := apiErr(http.StatusServiceUnavailable, "", 0)
	earlier := func(err error, ago time.Duration, delivery uint64) Attempt {
		return newAttempt(now.Add(-ago), now.Add(-ago), delivery, err)
	}
	// facts is one failed attempt at now, the first of its delivery unless
	// changed by the case.
	type change func(*Facts)
	tests := []struct {
		name   string
		policy func(*Policy)
		err    error
		change []change
		want   Decision
		errHas string
	}{
		{name: "success is done", err: nil, want: Decision{Verdict: Done}},
		{name: "404 is dead", err: apiErr(http.StatusNotFound, "Ticket not found.", 0),
			want: Decision{Verdict: Dead, Reason: ReasonPermanent}, errHas: "404"},
		{name: "403 permission denied is dead at once", err: apiErr(http.StatusForbidden, "Permission denied.", 0),
			want: Decision{Verdict: Dead, Reason: ReasonPermanent}},
		{name: "a bad rendered parameter is dead", err: &ParamError{Param: "ticket_id", Err: errors.New("want an integer id")},
			want: Decision{Verdict: Dead, Reason: ReasonInvalidParams}, errHas: "ticket_id"},
		{name: "an error marked permanent is dead", err: Permanent(errors.New("no")),
			want: Decision{Verdict: Dead, Reason: ReasonPermanent}},
		{name: "Comm100 503: retry, the pool pauses and probes", err: unavailable,
			want: Decision{Verdict: Retry, Delay: 250 * time.Millisecond, Pause: Pause{For: 250 * time.Millisecond, Probe: true}}},
		{name: "Comm100 503 in a streak: the pause grows, the retry waits for it", err: unavailable,
			change: []change{func(f *Facts) { f.Streak.Failures = 4 }},
			want:   Decision{Verdict: Retry, Delay: 4 * time.Second, Pause: Pause{For: 4 * time.Second, Probe: true}}},
		{name: "Comm100 connection refused: treated as an outage", err: &net.OpError{Op: "dial", Err: errors.New("connection refused")},
			want: Decision{Verdict: Retry, Delay: 250 * time.Millisecond, Pause: Pause{For: 250 * time.Millisecond, Probe: true}}},
		{name: "in-process budget spent: redeliver after the job's own backoff", err: unavailable,
			change: []change{func(f *Facts) { f.Started = now.Add(-9900 * time.Millisecond); f.Delivery = 3 }},
			want:   Decision{Verdict: Redeliver, Delay: 20 * time.Second, Pause: Pause{For: 250 * time.Millisecond, Probe: true}}},
		{name: "outage for everyone: redelivered no later than the next probe", err: unavailable,
			change: []change{func(f *Facts) {
				f.Started = now.Add(-9 * time.Second)
				f.Delivery = 6
				f.Streak = Streak{Failures: 40, Others: true}
			}},
			want: Decision{Verdict: Redeliver, Delay: 15 * time.Second, Pause: Pause{For: 15 * time.Second, Probe: true}}},
		{name: "one job failing alone keeps its own backoff", err: unavailable,
			change: []change{func(f *Facts) {
				f.Started = now.Add(-9 * time.Second)
				f.Delivery = 6
				f.Streak = Streak{Failures: 40}
			}},
			want: Decision{Verdict: Redeliver, Delay: 160 * time.Second, Pause: Pause{For: 15 * time.Second, Probe: true}}},
		{name: "Comm100 503 with Retry-After: the pause honours it", err: apiErr(http.StatusServiceUnavailable, "", 20*time.Second),
			want: Decision{Verdict: Redeliver, Delay: 20 * time.Second, Pause: Pause{For: 20 * time.Second, Probe: true}}},
		{name: "429 with Retry-After: pause that long, the job comes back then", err: apiErr(http.StatusTooManyRequests, "", time.Minute),
			change: []change{func(f *Facts) { f.Delivery = 9 }},
			want:   Decision{Verdict: Redeliver, Delay: time.Minute, Pause: Pause{For: time.Minute}}},
		{name: "429 without Retry-After: the configured pause", err: apiErr(http.StatusTooManyRequests, "", 0),
			want: Decision{Verdict: Redeliver, Delay: 30 * time.Second, Pause: Pause{For: 30 * time.Second}}},
		{name: "403 that speaks of a limit is a rate limit", err: apiErr(http.StatusForbidden, "Request limit exceeded.", 0),
			policy: func(p *Policy) { p.RateLimitPause = 2 * time.Second },
			want:   Decision{Verdict: Retry, Delay: 2 * time.Second, Pause: Pause{For: 2 * time.Second}}},
		{name: "first bare 403: retried, it may be a limit", err: bare403,
			want: Decision{Verdict: Retry, Delay: 250 * time.Millisecond, Pause: Pause{For: 250 * time.Millisecond, Probe: true}}},
		{name: "third bare 403, counting earlier deliveries: dead", err: bare403,
			change: []change{func(f *Facts) {
				f.History = append([]Attempt{earlier(bare403, time.Minute, 1), earlier(bare403, 50*time.Second, 1)}, f.History...)
			}},
			want: Decision{Verdict: Dead, Reason: ReasonPermanent}, errHas: "3 answers 403 without a rate-limit message"},
		{name: "rate-limit 403s are not counted as bare", err: bare403,
			change: []change{func(f *Facts) {
				limit := apiErr(http.StatusForbidden, "Too many requests", 0)
				f.History = append([]Attempt{earlier(limit, time.Minute, 1), earlier(limit, 50*time.Second, 1)}, f.History...)
			}},
			want: Decision{Verdict: Retry, Delay: 250 * time.Millisecond, Pause: Pause{For: 250 * time.Millisecond, Probe: true}}},
		{name: "a chat not stored yet: retried, Comm100 is not down", err: fmt.Errorf("attach chat: %w", comm100.ErrNotStoredYet),
			want: Decision{Verdict: Retry, Delay: 250 * time.Millisecond}},
		{name: "the shared budget unreachable: retried, Comm100 is not down",
			err: fmt.Errorf("comm100 POST ticketing/tickets: %w",
				&comm100.TransportError{Err: fmt.Errorf("%w: %w", ErrBudgetUnavailable, errors.New("nats: timeout"))}),
			want: Decision{Verdict: Retry, Delay: 250 * time.Millisecond}},
		{name: "past the horizon: dead", err: unavailable,
			change: []change{func(f *Facts) { f.Due = now.Add(-25 * time.Hour) }},
			want:   Decision{Verdict: Dead, Reason: ReasonExhausted}},
		{name: "the horizon counts from the due time", err: unavailable,
			change: []change{func(f *Facts) { f.Due = now.Add(-23 * time.Hour) }},
			want:   Decision{Verdict: Retry, Delay: 250 * time.Millisecond, Pause: Pause{For: 250 * time.Millisecond, Probe: true}}},
		{name: "max attempts reached: dead", err: unavailable, policy: func(p *Policy) { p.MaxAttempts = 3 },
			change: []change{func(f *Facts) {
				f.History = append([]Attempt{earlier(unavailable, time.Minute, 1), earlier(unavailable, 30*time.Second, 2)}, f.History...)
			}},
			want: Decision{Verdict: Dead, Reason: ReasonExhausted}},
		{name: "max attempts counts only attempts since the job was due", err: unavailable, policy: func(p *Policy) { p.MaxAttempts = 3 },
			change: []change{func(f *Facts) {
				f.Due = now.Add(-time.Minute)
				f.History = append([]Attempt{earlier(unavailable, 2*time.Hour, 1), earlier(unavailable, time.Hour, 2)}, f.History...)
			}},
			want: Decision{Verdict: Retry, Delay: 250 * time.Millisecond, Pause: Pause{For: 250 * time.Millisecond, Probe: true}}},
		{name: "retry delay grows with the attempts of this delivery", err: errors.New("x"),
			change: []change{func(f *Facts) {
				f.Comm100 = false
				f.Started = now.Add(-2 * time.Second)
				f.History = []Attempt{earlier(context.DeadlineExceeded, 2*time.Second, 1), earlier(context.DeadlineExceeded, time.Second, 1), f.History[0]}
				f.Err = context.DeadlineExceeded
			}},
			want: Decision{Verdict: Retry, Delay: time.Second}},
		{name: "stopping: a transient failure is handed back at once", err: unavailable,
			change: []change{func(f *Facts) { f.Stopping = true }},
			want:   Decision{Verdict: Redeliver}},
		{name: "stopping: a call cut short by the stop is handed back", err: context.Canceled,
			change: []change{func(f *Facts) { f.Stopping = true }},
			want:   Decision{Verdict: Redeliver}},
		{name: "stopping: a permanent failure still goes to the DLQ", err: apiErr(http.StatusBadRequest, "bad", 0),
			change: []change{func(f *Facts) { f.Stopping = true }},
			want:   Decision{Verdict: Dead, Reason: ReasonPermanent}},
		{name: "http.request 503 with Retry-After: its host pauses, not the pool", err: fmt.Errorf("POST x: %w", &HTTPError{Host: "crm.example:443", Status: 503, RetryAfter: 3 * time.Second}),
			change: []change{func(f *Facts) { f.Comm100 = false }},
			want:   Decision{Verdict: Retry, Delay: 3 * time.Second, Pause: Pause{For: 3 * time.Second, Host: "crm.example:443"}}},
		{name: "http.request 429 with a long Retry-After: redelivered after it", err: &HTTPError{Host: "crm.example", Status: 429, RetryAfter: time.Hour},
			change: []change{func(f *Facts) { f.Comm100 = false }},
			want:   Decision{Verdict: Redeliver, Delay: time.Hour, Pause: Pause{For: time.Hour, Host: "crm.example"}}},
		{name: "http.request 503 without Retry-After: no pause", err: &HTTPError{Host: "crm.example", Status: 503},
			change: []change{func(f *Facts) { f.Comm100 = false }},
			want:   Decision{Verdict: Retry, Delay: 250 * time.Millisecond}},
		{name: "http.request 400: dead", err: &HTTPError{Host: "crm.example", Status: 400},
			change: []change{func(f *Facts) { f.Comm100 = false }},
			want:   Decision{Verdict: Dead, Reason: ReasonPermanent}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPolicy()
			if tt.policy != nil {
				tt.policy(&p)
			}
			f := Facts{
				Now: now, Due: now.Add(-time.Minute), Delivery: 1, Started: now, Err: tt.err, Comm100: true,
				History: []Attempt{newAttempt(now, now, 1, tt.err)},
			}
			for _, c := range tt.change {
				c(&f)
			}
			got := p.Decide(f)
			if got.Verdict != tt.want.Verdict || got.Delay != tt.want.Delay || got.Reason != tt.want.Reason || got.Pause != tt.want.Pause {
				t.Errorf("got %s delay %s reason %q pause %+v,\nwant %s delay %s reason %q pause %+v",
					got.Verdict, got.Delay, got.Reason, got.Pause, tt.want.Verdict, tt.want.Delay, tt.want.Reason, tt.want.Pause)
			}
			switch {
			case tt.err == nil && got.Err != nil:
				t.Errorf("success reported error %v", got.Err)
			case tt.err != nil && got.Err == nil:
				t.Error("failure reported no error")
			case tt.errHas != "" && !strings.Contains(got.Err.Error(), tt.errHas):
				t.Errorf("error %q does not say %q", got.Err, tt.errHas)
			}
		})
	}
}

// TestDecideRedeliveryIsBoundedDuringAnOutage: whatever the delivery count,
// a job handed back while Comm100 fails for everyone comes back no later
// than the pool's next probe, so a probe that succeeds finds it ready.
func TestDecideRedeliveryIsBoundedDuringAnOutage(t *testing.T) {
	p := testPolicy()
	p.Outage.Jitter, p.Redelivery.Jitter = 0, 0 // real jitter
	now := time.Now()
	err := apiErr(http.StatusBadGateway, "", 0)
	for delivery := uint64(1); delivery <= 50; delivery++ {
		for streak := 1; streak <= 60; streak += 7 {
			d := p.Decide(Facts{
				Now: now, Due: now.Add(-time.Hour), Delivery: delivery, Started: now.Add(-time.Minute), Err: err, Comm100: true,
				History: []Attempt{newAttempt(now, now, delivery, err)}, Streak: Streak{Failures: streak, Others: true},
			})
			if d.Verdict != Redeliver || d.Delay > d.Pause.For || d.Pause.For > p.Outage.Max {
				t.Fatalf("delivery %d, streak %d: got %s after %s with a pause of %s, want a redelivery by the pause's end, at most %s",
					delivery, streak, d.Verdict, d.Delay, d.Pause.For, p.Outage.Max)
			}
		}
	}
}

func TestVerdictString(t *testing.T) {
	for v, want := range map[Verdict]string{Done: "done", Retry: "retry", Redeliver: "redeliver", Dead: "dead", 0: "Verdict(0)"} {
		if got := v.String(); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

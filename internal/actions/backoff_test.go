package actions

import (
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	noJitter := func(b Backoff) Backoff { b.Jitter = -1; return b }
	tests := []struct {
		name     string
		b        Backoff
		failures int
		want     time.Duration
	}{
		{"zero value: no failure, no wait", noJitter(Backoff{}), 0, 0},
		{"zero value: first failure waits the base", noJitter(Backoff{}), 1, 250 * time.Millisecond},
		{"zero value: doubles", noJitter(Backoff{}), 2, 500 * time.Millisecond},
		{"zero value: doubles again", noJitter(Backoff{}), 5, 4 * time.Second},
		{"zero value: capped at 30s", noJitter(Backoff{}), 8, 30 * time.Second},
		{"zero value: a long streak stays capped", noJitter(Backoff{}), 1 << 30, 30 * time.Second},
		{"negative count: no wait", noJitter(Backoff{}), -3, 0},
		{"in process: 250ms doubling to 4s", noJitter(Backoff{Base: 250 * time.Millisecond, Max: 4 * time.Second}), 6, 4 * time.Second},
		{"redelivery: first", noJitter(Backoff{Base: 5 * time.Second, Max: 5 * time.Minute}), 1, 5 * time.Second},
		{"redelivery: sixth", noJitter(Backoff{Base: 5 * time.Second, Max: 5 * time.Minute}), 6, 160 * time.Second},
		{"redelivery: seventh is capped", noJitter(Backoff{Base: 5 * time.Second, Max: 5 * time.Minute}), 7, 5 * time.Minute},
		{"base above max: the max", noJitter(Backoff{Base: time.Minute, Max: time.Second}), 1, time.Second},
		{"default jitter, lowest draw: half", Backoff{Rand: func() float64 { return 1 }}, 3, 500 * time.Millisecond},
		{"default jitter, highest draw: whole", Backoff{Rand: func() float64 { return 0 }}, 3, time.Second},
		{"jitter 0.2, lowest draw", Backoff{Jitter: 0.2, Rand: func() float64 { return 1 }}, 1, 200 * time.Millisecond},
		{"jitter above 1 is 1", Backoff{Jitter: 7, Rand: func() float64 { return 0.5 }}, 1, 125 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.b.Delay(tt.failures); got != tt.want {
				t.Errorf("Delay(%d): got %s, want %s", tt.failures, got, tt.want)
			}
		})
	}
}

// TestBackoffJitterStaysInRange draws real random jitter: the delay is never
// above the schedule, nor below half of it.
func TestBackoffJitterStaysInRange(t *testing.T) {
	b := Backoff{Base: time.Second, Max: time.Minute}
	for n := 1; n <= 10; n++ {
		full := min(time.Second<<(n-1), time.Minute)
		for range 200 {
			if d := b.Delay(n); d < full/2 || d > full {
				t.Fatalf("Delay(%d) = %s, want within [%s, %s]", n, d, full/2, full)
			}
		}
	}
}

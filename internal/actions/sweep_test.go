package actions

import (
	"testing"
	"time"
)

// TestSweepPause: slow passes space the next ones out.
func TestSweepPause(t *testing.T) {
	for _, c := range []struct{ took, want time.Duration }{
		{0, time.Second},
		{20 * time.Millisecond, time.Second},
		{50 * time.Millisecond, time.Second},
		{100 * time.Millisecond, 2 * time.Second},
		{time.Second, 20 * time.Second},
	} {
		if got := sweepPause(time.Second, c.took); got != c.want {
			t.Errorf("after a pass of %s: %s, want %s", c.took, got, c.want)
		}
	}
}

package rules

import (
	"testing"
	"time"
)

func TestThrottleLetsOneLineThroughPerPeriod(t *testing.T) {
	th := throttle{every: 30 * time.Second}
	t0 := time.Unix(0, 0)
	steps := []struct {
		at         time.Duration
		ok         bool
		suppressed int
	}{
		{0, true, 0},
		{time.Second, false, 0},
		{29 * time.Second, false, 0},
		{30 * time.Second, true, 2},
		{31 * time.Second, false, 0},
		{2 * time.Minute, true, 1},
	}
	for _, s := range steps {
		ok, n := th.allow(t0.Add(s.at))
		if ok != s.ok || n != s.suppressed {
			t.Errorf("at %s: got %v %d, want %v %d", s.at, ok, n, s.ok, s.suppressed)
		}
	}
}

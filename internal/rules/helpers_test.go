package rules

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/comm100bot/bot/internal/event"
)

func TestBusinessHours(t *testing.T) {
	// 2026-03-02 is a Monday.
	tests := []struct {
		name string
		utc  string
		tz   string
		spec string
		want bool
	}{
		{"inside, Windows id", "2026-03-02T17:30:00Z", "Pacific Standard Time", "Mon-Fri 09:00-17:00", true},    // 09:30 PST
		{"before opening", "2026-03-02T16:59:00Z", "Pacific Standard Time", "Mon-Fri 09:00-17:00", false},       // 08:59
		{"closing is exclusive", "2026-03-03T01:00:00Z", "Pacific Standard Time", "Mon-Fri 09:00-17:00", false}, // 17:00
		{"weekend", "2026-03-07T18:00:00Z", "Pacific Standard Time", "Mon-Fri 09:00-17:00", false},
		{"second part", "2026-03-07T18:00:00Z", "Pacific Standard Time", "Mon-Fri 09:00-17:00; Sat 10:00-14:00", true},
		{"IANA name", "2026-03-02T08:00:00Z", "Europe/Berlin", "Mon 09:00-10:00", true},
		{"day wraps the week", "2026-03-01T12:00:00Z", "UTC", "Fri-Sun 00:00-24:00", true},
		{"day list", "2026-03-04T12:00:00Z", "UTC", "Mon,Wed 11:00-13:00", true},
		{"daily", "2026-03-08T12:00:00Z", "China Standard Time", "Daily 20:00-21:00", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now, _ := time.Parse(time.RFC3339, tt.utc)
			got, err := businessHours(now, tt.tz, tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	for _, bad := range []string{"", "Mon", "Mon 9-5", "Funday 09:00-10:00", "Mon 10:00-09:00"} {
		if _, err := businessHours(time.Now(), "UTC", bad); err == nil {
			t.Errorf("spec %q: want an error", bad)
		}
	}
	if _, err := businessHours(time.Now(), "Atlantis Standard Time", "Daily 00:00-24:00"); err == nil {
		t.Error("unknown zone: want an error")
	}
}

func TestHelpersInRules(t *testing.T) {
	eng := mustLoad(t, `
rules:
  - name: after-hours
    on: comm100.chat.ended
    when: '!businessHours("Pacific Standard Time", "Mon-Fri 09:00-17:00")'
    actions:
      - do: log
        with:
          message: 'local {{ localTime("Pacific Standard Time").Format("15:04 Mon") }} {{ lower(data.chat.name) }} {{ data.chat.name contains "Jane" }} {{ data.chat.name matches "^J" }}'
`)
	ev := &event.Event{ID: "x", Source: "comm100", Type: "chat.ended", Data: map[string]any{"chat": map[string]any{"name": "Jane"}}}
	sat := time.Date(2026, 3, 7, 20, 0, 0, 0, time.UTC)
	jobs, errs := eng.Match(ev, sat)
	if len(errs) > 0 || len(jobs) != 1 {
		t.Fatalf("got %v %v, want one job on a Saturday", jobs, errs)
	}
	if got, want := jobs[0].Params["message"], "local 12:00 Sat jane true true"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	mon := time.Date(2026, 3, 2, 18, 0, 0, 0, time.UTC) // 10:00 in Vancouver
	if jobs, _ := eng.Match(ev, mon); len(jobs) != 0 {
		t.Errorf("got %d jobs inside business hours, want 0", len(jobs))
	}
}

// Business-hours specs that come from events do not grow the cache without
// end, and still parse once it is full.
func TestBusinessHoursSpecCacheIsBounded(t *testing.T) {
	for i := range maxSpecs + 50 {
		if _, err := parseHours(fmt.Sprintf("Mon-Fri 09:%02d-17:00", i%60) + strings.Repeat(";Sat 10:00-11:00", i/60+1)); err != nil {
			t.Fatal(err)
		}
	}
	if n := specCount.Load(); n > maxSpecs {
		t.Errorf("%d specs cached, want at most %d", n, maxSpecs)
	}
	n := 0
	specs.Range(func(any, any) bool { n++; return true })
	if n > maxSpecs {
		t.Errorf("%d specs in the cache, want at most %d", n, maxSpecs)
	}
}

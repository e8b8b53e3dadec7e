package rules

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/comm100bot/bot/internal/comm100"
)

// localTime returns now in the zone tz: a Comm100 Windows time-zone id
// ("Pacific Standard Time") or an IANA name ("America/Vancouver").
func localTime(now time.Time, tz string) (time.Time, error) {
	loc, err := comm100.Location(tz)
	if err != nil {
		return time.Time{}, err
	}
	return now.In(loc), nil
}

// businessHours reports whether now, in zone tz, falls inside spec: one or
// more "DAYS HH:MM-HH:MM" parts separated by ";", where DAYS is a day
// ("Mon"), a range ("Mon-Fri"), a list ("Mon,Wed,Fri") or "Daily".
// Example: "Mon-Fri 09:00-17:30; Sat 10:00-14:00".
func businessHours(now time.Time, tz, spec string) (bool, error) {
	t, err := localTime(now, tz)
	if err != nil {
		return false, err
	}
	windows, err := parseHours(spec)
	if err != nil {
		return false, err
	}
	minute := t.Hour()*60 + t.Minute()
	for _, w := range windows {
		if w.days&(1<<uint(t.Weekday())) != 0 && minute >= w.from && minute < w.to {
			return true, nil
		}
	}
	return false, nil
}

// optionalTime is the time a helper was given as its last argument (a time
// or an RFC 3339 string, such as data.chat.end_time), or now.
func optionalTime(now time.Time, at []any) (time.Time, error) {
	switch len(at) {
	case 0:
		return now, nil
	case 1:
	default:
		return time.Time{}, fmt.Errorf("want at most one time argument, got %d", len(at))
	}
	switch v := at[0].(type) {
	case time.Time:
		return v, nil
	case string:
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return time.Time{}, fmt.Errorf("time %q: want RFC 3339", v)
		}
		return t, nil
	default:
		return time.Time{}, fmt.Errorf("want a time or an RFC 3339 string, got %T", v)
	}
}

type hoursWindow struct {
	days     uint8 // bit per time.Weekday
	from, to int   // minutes since midnight, to exclusive
}

// specs caches parsed business-hours specs; rules use a handful of them.
// It keeps at most maxSpecs: a spec that comes from events' data would
// otherwise grow it without end.
var (
	specs     sync.Map // string -> []hoursWindow
	specCount atomic.Int32
)

const maxSpecs = 256

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

func parseHours(spec string) ([]hoursWindow, error) {
	if w, ok := specs.Load(spec); ok {
		return w.([]hoursWindow), nil
	}
	var out []hoursWindow
	for _, part := range strings.Split(spec, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		fields := strings.Fields(part)
		if len(fields) != 2 {
			return nil, fmt.Errorf("business hours %q: want DAYS HH:MM-HH:MM, such as Mon-Fri 09:00-17:00", part)
		}
		days, err := parseDays(fields[0])
		if err != nil {
			return nil, fmt.Errorf("business hours %q: %w", part, err)
		}
		from, to, ok := strings.Cut(fields[1], "-")
		f, err1 := parseClock(from)
		t, err2 := parseClock(to)
		if !ok || err1 != nil || err2 != nil || t <= f {
			return nil, fmt.Errorf("business hours %q: want a range like 09:00-17:00 (24:00 for midnight)", part)
		}
		out = append(out, hoursWindow{days: days, from: f, to: t})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("business hours: empty spec")
	}
	if specCount.Load() < maxSpecs {
		if _, loaded := specs.LoadOrStore(spec, out); !loaded {
			specCount.Add(1)
		}
	}
	return out, nil
}

func parseDays(s string) (uint8, error) {
	if strings.EqualFold(s, "daily") {
		return 0x7f, nil
	}
	var days uint8
	for _, item := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(strings.ToLower(item), "-")
		from, ok1 := dayNames[a]
		to, ok2 := from, true
		if isRange {
			to, ok2 = dayNames[b]
		}
		if !ok1 || !ok2 {
			return 0, fmt.Errorf("unknown day in %q; use Mon, Tue, Wed, Thu, Fri, Sat, Sun or Daily", item)
		}
		for d := from; ; d = (d + 1) % 7 {
			days |= 1 << uint(d)
			if d == to {
				break
			}
		}
	}
	return days, nil
}

func parseClock(s string) (int, error) {
	var h, m int
	if _, err := fmt.Sscanf(s, "%d:%d", &h, &m); err != nil || h < 0 || h > 24 || m < 0 || m > 59 || (h == 24 && m != 0) {
		return 0, fmt.Errorf("bad time %q", s)
	}
	return h*60 + m, nil
}

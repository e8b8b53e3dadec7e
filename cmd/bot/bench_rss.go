package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// rssStats is the resident memory of the bot's process, sampled during a
// run's load. The first quarter of a load is its warm-up (NATS's buffers, the
// windows of ids filling up); a last quarter well above the second means the
// memory still grows.
type rssStats struct {
	Samples int   `json:"samples"`
	Max     int64 `json:"max_bytes"`
	// SecondQuarter and LastQuarter are the highest samples in those
	// quarters of the load; 0 if a quarter had none.
	SecondQuarter int64 `json:"second_quarter_max_bytes"`
	LastQuarter   int64 `json:"last_quarter_max_bytes"`
}

// rssSample is one reading, at an offset into the load.
type rssSample struct {
	at    time.Duration
	bytes int64
}

// summarizeRSS sums up the samples of a load that lasted length.
func summarizeRSS(samples []rssSample, length time.Duration) *rssStats {
	if len(samples) == 0 {
		return nil
	}
	s := &rssStats{Samples: len(samples)}
	for _, r := range samples {
		s.Max = max(s.Max, r.bytes)
		switch q := int(4 * r.at / max(length, 1)); {
		case q == 1:
			s.SecondQuarter = max(s.SecondQuarter, r.bytes)
		case q >= 3:
			s.LastQuarter = max(s.LastQuarter, r.bytes)
		}
	}
	return s
}

// watchRSS reads the resident memory of pid ("self" or a number) every
// interval until the returned stop is called, which returns the samples.
func watchRSS(pid string, interval time.Duration) (stop func() []rssSample) {
	start := time.Now()
	done := make(chan struct{})
	out := make(chan []rssSample, 1)
	go func() {
		var samples []rssSample
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				out <- samples
				return
			case <-t.C:
				if n := procStatusBytes(pid, "VmRSS:"); n > 0 {
					samples = append(samples, rssSample{at: time.Since(start), bytes: n})
				}
			}
		}
	}()
	return func() []rssSample {
		close(done)
		return <-out
	}
}

// rssInterval is how often watchRSS samples a load of length d: every
// second, or 20 times in a shorter load.
func rssInterval(d time.Duration) time.Duration {
	return max(min(time.Second, d/20), 10*time.Millisecond)
}

// procStatusBytes reads a field of /proc/<pid>/status given in kB ("VmHWM:",
// "VmRSS:"), in bytes; 0 if it cannot.
func procStatusBytes(pid, field string) int64 {
	data, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, field); ok {
			f := strings.Fields(v)
			if len(f) == 2 && f[1] == "kB" {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n * 1024
			}
		}
	}
	return 0
}

func (s *rssStats) print(w io.Writer, run int, of string) {
	mb := func(n int64) string {
		if n == 0 {
			return "none"
		}
		return fmt.Sprintf("%.0f MB", float64(n)/(1<<20))
	}
	fmt.Fprintf(w, "bot run %d: RSS during the load (%s): up to %s; highest in its second quarter %s, in its last %s (%d samples)\n",
		run, of, mb(s.Max), mb(s.SecondQuarter), mb(s.LastQuarter), s.Samples)
}

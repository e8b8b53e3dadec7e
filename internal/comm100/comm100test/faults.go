package comm100test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"time"
)

// Faults are failures the simulator injects, for tests and demos.
type Faults struct {
	// FailRate is the share of API calls, 0 to 1, answered 500. It is exact
	// and deterministic: with 0.25 every fourth call fails.
	FailRate float64
	// Latency is added before every answer, token calls included.
	Latency time.Duration
	// OutageFrom and OutageFor make every call, token calls included,
	// answer 503 in [OutageFrom, OutageFrom+OutageFor).
	OutageFrom time.Time
	OutageFor  time.Duration
}

// faultsJSON is how Faults travel through /_sim/faults: durations as Go
// duration strings ("250ms"), the outage start as RFC 3339.
type faultsJSON struct {
	FailRate   float64   `json:"fail_rate"`
	Latency    string    `json:"latency,omitempty"`
	OutageFrom time.Time `json:"outage_from,omitzero"`
	OutageFor  string    `json:"outage_for,omitempty"`
}

// MarshalJSON writes durations as "250ms".
func (f Faults) MarshalJSON() ([]byte, error) {
	j := faultsJSON{FailRate: f.FailRate, OutageFrom: f.OutageFrom}
	if f.Latency > 0 {
		j.Latency = f.Latency.String()
	}
	if f.OutageFor > 0 {
		j.OutageFor = f.OutageFor.String()
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (f *Faults) UnmarshalJSON(b []byte) error {
	var j faultsJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return err
	}
	out := Faults{FailRate: j.FailRate, OutageFrom: j.OutageFrom}
	var err error
	if j.Latency != "" {
		if out.Latency, err = time.ParseDuration(j.Latency); err != nil {
			return fmt.Errorf("latency: %w", err)
		}
	}
	if j.OutageFor != "" {
		if out.OutageFor, err = time.ParseDuration(j.OutageFor); err != nil {
			return fmt.Errorf("outage_for: %w", err)
		}
	}
	*f = out
	return nil
}

// Validate checks the ranges.
func (f Faults) Validate() error {
	if math.IsNaN(f.FailRate) || f.FailRate < 0 || f.FailRate > 1 {
		return fmt.Errorf("fail_rate: want 0 to 1, got %v", f.FailRate)
	}
	if f.Latency < 0 {
		return fmt.Errorf("latency: want a positive duration, got %s", f.Latency)
	}
	if f.OutageFor < 0 {
		return fmt.Errorf("outage_for: want a positive duration, got %s", f.OutageFor)
	}
	return nil
}

// Faults returns the faults in force.
func (s *Server) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// SetFaults replaces the faults in force. An outage with a length but no
// start starts now.
func (s *Server) SetFaults(f Faults) error {
	if err := f.Validate(); err != nil {
		return err
	}
	if f.OutageFor > 0 && f.OutageFrom.IsZero() {
		f.OutageFrom = s.cfg.Now()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
	s.calls = 0
	return nil
}

// injectFaults applies latency, an outage, the rate limit and the fail
// rate, in that order, and reports whether the call may go on.
func (s *Server) injectFaults(w http.ResponseWriter, r *http.Request, isToken bool) bool {
	f := s.Faults()
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return false
		}
	}
	now := s.cfg.Now()
	if f.OutageFor > 0 && !now.Before(f.OutageFrom) && now.Before(f.OutageFrom.Add(f.OutageFor)) {
		writeError(w, http.StatusServiceUnavailable, 503000, "The service is unavailable (simulated outage).")
		return false
	}
	// The token endpoint is on the control panel's host, not the API's;
	// whether the per-IP limit counts its calls is not documented, so they
	// count, the stricter reading of "300 calls per 5 minutes per client
	// IP" (SOURCES.md).
	if s.limit != nil && !s.limit.allow(clientIP(r), now) {
		s.limit.refuse(w)
		return false
	}
	if isToken {
		return true
	}
	if f.FailRate > 0 {
		s.mu.Lock()
		s.calls++
		n := s.calls
		s.mu.Unlock()
		// Call n fails when it carries the running count of failures,
		// floor(n*rate), one higher: exactly rate of all calls, spread out.
		if math.Floor(float64(n)*f.FailRate) > math.Floor(float64(n-1)*f.FailRate) {
			writeError(w, http.StatusInternalServerError, 500000, "An internal server error occurred (simulated).")
			return false
		}
	}
	return true
}

package actions

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the pool's Prometheus metrics.
type metrics struct {
	// jobs counts finished deliveries by action and outcome: done, dry_run,
	// duplicate, cancelled, retry_later, handed_back, claimed, rescheduled,
	// dead.
	jobs *prometheus.CounterVec
	// attempts counts attempts by action and result: ok, transient, permanent.
	attempts *prometheus.CounterVec
	pauses   prometheus.Counter
	record   prometheus.Histogram
	// parked counts the jobs parked in the lanes (see lane.admit).
	parked prometheus.Gauge
}

// gauges are the counts the pool's gauges read when scraped; nil ones are
// left out.
type gauges struct {
	dead      func(context.Context) (uint64, error)
	scheduled func(context.Context) (uint64, error)
	waiting   func(context.Context) (uint64, error)
	available func() int
}

// newMetrics returns the pool's metrics, registered with reg (nil: kept
// unregistered, as tests do).
func newMetrics(reg prometheus.Registerer, g gauges) (*metrics, error) {
	m := &metrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bot_jobs_total",
			Help: "Jobs finished, by action and outcome (done, dry_run, duplicate, cancelled, retry_later, handed_back, claimed, rescheduled, dead).",
		}, []string{"action", "outcome"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bot_job_attempts_total",
			Help: "Attempts to carry out a job, by action and result (ok, transient, permanent).",
		}, []string{"action", "result"}),
		pauses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bot_dispatch_pauses_total",
			Help: "Times the whole pool paused after a Comm100 rate-limit answer or failure.",
		}),
		record: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bot_job_record_seconds",
			Help:    "Time from a successful action's answer to its record in the jobs_done bucket: the window in which a crash could repeat the action.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}),
		parked: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bot_jobs_parked",
			Help: "Jobs to an outside host this replica holds back while such jobs take all of a lane's workers but one, or that host has half of those (rounded up), until one of them ends.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	cs := []prometheus.Collector{m.jobs, m.attempts, m.pauses, m.record, m.parked}
	if g.dead != nil {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "bot_dlq_jobs", Help: "Jobs in the dead-letter stream (-1 when NATS cannot tell).",
		}, countGauge(g.dead)))
	}
	if g.scheduled != nil {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "bot_scheduled_jobs", Help: "Delayed jobs waiting for their time, and jobs waiting for their host's turn (-1 when NATS cannot tell).",
		}, countGauge(g.scheduled)))
	}
	if g.waiting != nil {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "bot_jobs_waiting",
			Help: "Jobs due and not finished yet: stored for the pool and not delivered, or delivered and not acknowledged, summed over the pool's two lanes; a Comm100 job counts twice until the other lane has passed over it (-1 when NATS cannot tell).",
		}, countGauge(g.waiting)))
	}
	if g.available != nil {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "bot_limiter_available", Help: "Comm100 calls that could start now without waiting.",
		}, func() float64 { return float64(g.available()) }))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register dispatch metrics: %w", err)
		}
	}
	return m, nil
}

// countGauge reads a count for a gauge, bounded in time; -1 if it cannot be
// had.
func countGauge(count func(context.Context) (uint64, error)) func() float64 {
	return func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, err := count(ctx)
		if err != nil {
			return -1
		}
		return float64(n)
	}
}

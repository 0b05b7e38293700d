package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/batonhq/baton/handoff"
)

// handoffBuckets are baton_handoff_seconds' upper bounds, 1 ms to 10 s: a
// hand-over takes a few milliseconds plus the successor's start-up, and
// ReadyTimeout bounds it.
var handoffBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// collector is a prometheus.Collector that reads one handoff.Status per
// scrape and turns it into baton's metrics; it keeps no state of its own
// and starts no goroutine, so a scrape sees the generation as it is.
//
// baton_handoff_seconds is computed from Counters.HandoffSeconds, the
// successful upgrades among the last handoff.MaxHistory in the history: a
// window, not a running total. Past MaxHistory upgrades its count stops
// growing, and an old sample leaving the window can lower a bucket, which
// Prometheus takes for a counter reset. Count upgrades with
// baton_upgrades_total; read the histogram as the recent distribution.
type collector struct {
	status func() handoff.Status // (*handoff.Upgrader).Status

	generation, upgrades, drainingGens, drainingConns, handoffSeconds *prometheus.Desc
}

// newCollector returns a collector of the Status that status returns.
func newCollector(status func() handoff.Status) *collector {
	return &collector{
		status: status,
		generation: prometheus.NewDesc("baton_generation",
			"Generation of the process that answered the scrape (1 for the first one started).", nil, nil),
		upgrades: prometheus.NewDesc("baton_upgrades_total",
			"Upgrades by outcome (ok, failed, abandoned), this process's and those of the history it inherited from its predecessors.",
			[]string{"outcome"}, nil),
		drainingGens: prometheus.NewDesc("baton_draining_generations",
			"Older generations still draining.", nil, nil),
		drainingConns: prometheus.NewDesc("baton_draining_connections",
			"Connections still open in the draining generations, those whose count is known.", nil, nil),
		handoffSeconds: prometheus.NewDesc("baton_handoff_seconds",
			"Duration of the successful upgrades among the last ones the history keeps, from the request to the hand-over of the main PID.", nil, nil),
	}
}

// Describe sends the descriptors of every metric Collect sends.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.generation, c.upgrades, c.drainingGens, c.drainingConns, c.handoffSeconds} {
		ch <- d
	}
}

// Collect reads the Status once and sends the metrics computed from it.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.status()
	ch <- prometheus.MustNewConstMetric(c.generation, prometheus.GaugeValue, float64(st.Generation))
	for _, o := range []struct {
		outcome string
		n       int
	}{
		{"ok", st.Counters.UpgradesOK},
		{"failed", st.Counters.UpgradesFailed},
		{"abandoned", st.Counters.UpgradesAbandoned},
	} {
		ch <- prometheus.MustNewConstMetric(c.upgrades, prometheus.CounterValue, float64(o.n), o.outcome)
	}
	conns := 0
	for _, d := range st.Draining {
		if d.Connections >= 0 { // -1: unknown
			conns += d.Connections
		}
	}
	ch <- prometheus.MustNewConstMetric(c.drainingGens, prometheus.GaugeValue, float64(len(st.Draining)))
	ch <- prometheus.MustNewConstMetric(c.drainingConns, prometheus.GaugeValue, float64(conns))
	count, sum, buckets := histogram(st.Counters.HandoffSeconds, handoffBuckets)
	ch <- prometheus.MustNewConstHistogram(c.handoffSeconds, count, sum, buckets)
}

// histogram returns the count, the sum and the cumulative bucket counts
// (upper bound to the number of samples at or below it) of samples; a
// sample above the last bound is only in the count (the +Inf bucket).
func histogram(samples, bounds []float64) (count uint64, sum float64, buckets map[float64]uint64) {
	buckets = make(map[float64]uint64, len(bounds))
	for _, b := range bounds {
		buckets[b] = 0
	}
	for _, s := range samples {
		sum += s
		for _, b := range bounds {
			if s <= b {
				buckets[b]++
			}
		}
	}
	return uint64(len(samples)), sum, buckets
}

package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/batonhq/baton/handoff"
)

// collector is a prometheus.Collector that reads one handoff.Status per
// scrape and turns it into baton's metrics; it keeps no state of its own
// and starts no goroutine, so a scrape sees the generation as it is.
//
// baton_handoff_seconds is Counters.Handoff, the service's cumulative
// histogram of hand-over durations since its first generation (each
// generation passes it on with the history), in handoff.HandoffBuckets.
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
			"Duration of the successful upgrades, from the request to the hand-over of the main PID, since the first generation.", nil, nil),
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
	h := st.Counters.Handoff
	buckets := make(map[float64]uint64, len(handoff.HandoffBuckets))
	for _, b := range handoff.HandoffBuckets {
		buckets[b] = 0
	}
	for i, b := range h.Bounds {
		if i < len(h.Cumulative) {
			buckets[b] = h.Cumulative[i]
		}
	}
	ch <- prometheus.MustNewConstHistogram(c.handoffSeconds, h.Count, h.Sum, buckets)
}

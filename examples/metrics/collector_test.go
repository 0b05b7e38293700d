package main

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/batonhq/baton/handoff"
)

// TestCollector checks what one Status becomes: the counters by outcome,
// the draining connections without the unknown count (-1), and the
// histogram's cumulative buckets, a sample on a bound counted in it and
// one above 10 s only in +Inf.
func TestCollector(t *testing.T) {
	st := handoff.Status{
		Generation: 7,
		Draining: []handoff.DrainStatus{
			{PID: 10, Generation: 5, Connections: 3},
			{PID: 11, Generation: 6, Connections: -1},
			{PID: 12, Generation: 4, Connections: 2},
		},
		Counters: handoff.Counters{
			UpgradesOK: 5, UpgradesFailed: 2, UpgradesAbandoned: 1,
			Handoff: handoff.Histogram{
				Count: 4, Sum: 12.208, Bounds: handoff.HandoffBuckets,
				Cumulative: []uint64{0, 0, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3},
			},
		},
	}
	c := newCollector(func() handoff.Status { return st })
	want := `
# HELP baton_draining_connections Connections still open in the draining generations, those whose count is known.
# TYPE baton_draining_connections gauge
baton_draining_connections 5
# HELP baton_draining_generations Older generations still draining.
# TYPE baton_draining_generations gauge
baton_draining_generations 3
# HELP baton_generation Generation of the process that answered the scrape (1 for the first one started).
# TYPE baton_generation gauge
baton_generation 7
# HELP baton_handoff_seconds Duration of the successful upgrades, from the request to the hand-over of the main PID, since the first generation.
# TYPE baton_handoff_seconds histogram
baton_handoff_seconds_bucket{le="0.001"} 0
baton_handoff_seconds_bucket{le="0.0025"} 0
baton_handoff_seconds_bucket{le="0.005"} 2
baton_handoff_seconds_bucket{le="0.01"} 2
baton_handoff_seconds_bucket{le="0.025"} 2
baton_handoff_seconds_bucket{le="0.05"} 2
baton_handoff_seconds_bucket{le="0.1"} 2
baton_handoff_seconds_bucket{le="0.25"} 3
baton_handoff_seconds_bucket{le="0.5"} 3
baton_handoff_seconds_bucket{le="1"} 3
baton_handoff_seconds_bucket{le="2.5"} 3
baton_handoff_seconds_bucket{le="5"} 3
baton_handoff_seconds_bucket{le="10"} 3
baton_handoff_seconds_bucket{le="+Inf"} 4
baton_handoff_seconds_sum 12.208
baton_handoff_seconds_count 4
# HELP baton_upgrades_total Upgrades by outcome (ok, failed, abandoned), this process's and those of the history it inherited from its predecessors.
# TYPE baton_upgrades_total counter
baton_upgrades_total{outcome="abandoned"} 1
baton_upgrades_total{outcome="failed"} 2
baton_upgrades_total{outcome="ok"} 5
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}

	// A generation that never saw an upgrade: every series is there, at 0.
	st = handoff.Status{Generation: 1}
	if n := testutil.CollectAndCount(c); n != 7 {
		t.Errorf("a fresh generation exports %d series, want 7", n)
	}
}

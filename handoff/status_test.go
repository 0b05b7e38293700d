package handoff

import (
	"encoding/json"
	"testing"
	"time"
)

// TestHistory: the history keeps the last MaxHistory upgrades but counts
// all of them, its hand-over histogram is cumulative, and it survives the
// JSON that carries it to a successor.
func TestHistory(t *testing.T) {
	var h history
	for i := range MaxHistory + 8 {
		outcome := OutcomeOK
		if i%10 == 0 {
			outcome = OutcomeFailed
		}
		h.add(UpgradeRecord{Generation: i + 2, Outcome: outcome, Duration: time.Duration(i+1) * time.Millisecond})
	}
	if len(h.Upgrades) != MaxHistory || h.Upgrades[0].Generation != 10 || h.OK != 36 || h.Failed != 4 {
		t.Errorf("%d kept (first generation %d), %d ok, %d failed; want %d from generation 10, 36, 4", len(h.Upgrades), h.Upgrades[0].Generation, h.OK, h.Failed, MaxHistory)
	}
	if h.Handoff.Count != 36 || h.Handoff.Cumulative[len(h.Handoff.Cumulative)-1] != 36 || h.Handoff.Cumulative[2] != 4 {
		t.Errorf("histogram %+v, want 36 samples, 4 at most 5 ms", h.Handoff)
	}
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	var back history
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.OK != h.OK || back.Handoff.Count != h.Handoff.Count || back.Upgrades[5].Duration != h.Upgrades[5].Duration {
		t.Errorf("after JSON: %+v, want %+v", back, h)
	}
}

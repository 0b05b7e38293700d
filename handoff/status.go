package handoff

import (
	"encoding/json"
	"time"
)

// Status is what a generation knows of the service: itself, the older
// generations still draining, and the last upgrades. `baton status` shows
// it; Upgrader.Status returns it.
type Status struct {
	PID        int    `json:"pid"`
	Generation int    `json:"generation"`
	State      string `json:"state"` // StateStarting, StateServing, StateWatching, StateDraining, StateStopping
	// Started is when this process started (New).
	Started time.Time `json:"started"`
	Exe     string    `json:"exe"`
	// Connections is the number of connections this generation's servers
	// hold (those that count them: HTTPServer, TCPServer), -1 when none
	// does.
	Connections int            `json:"connections"`
	Sockets     []SocketStatus `json:"sockets"`
	// Draining lists the older generations still draining, oldest first
	// (empty in a generation that is itself draining).
	Draining []DrainStatus `json:"draining"`
	// DrainSince and DrainDeadline are set while this generation drains.
	DrainSince    time.Time `json:"drain_since,omitzero"`
	DrainDeadline time.Time `json:"drain_deadline,omitzero"`
	// Watch is set during a watch window (Config.WatchWindow), in both
	// generations.
	Watch *WatchStatus `json:"watch,omitempty"`
	// Upgrades are the last MaxHistory upgrades of the service, oldest
	// first: each generation passes its history on to its successor.
	Upgrades []UpgradeRecord `json:"upgrades"`
	Counters Counters        `json:"counters"`
}

// WatchStatus is a watch window as one of its two generations sees it.
type WatchStatus struct {
	// Role is "watching" in the old generation (it holds the main PID and
	// rolls back if the other ends) or "probation" in the new one (it
	// serves, and becomes main when the window has passed).
	Role       string    `json:"role"`
	PID        int       `json:"pid"`        // the other generation's
	Generation int       `json:"generation"` // the other generation's
	Until      time.Time `json:"until,omitzero"`
}

// States of a generation in Status.
const (
	StateStarting = "starting" // before Ready made it the main process
	StateServing  = "serving"  // the main process
	StateDraining = "draining" // handed over to its successor
	StateWatching = "watching" // main but paused: its successor serves on probation in a watch window
	StateStopping = "stopping" // a stop was requested (SIGTERM, Stop)
)

// SocketStatus is one of the sockets and files a generation passes on.
type SocketStatus struct {
	Name string `json:"name"`
	Kind string `json:"kind"` // "tcp", "udp", "unix", "unixgram", "unixpacket", "file", ...
	Addr string `json:"addr,omitempty"`
}

// DrainStatus is an older generation still draining.
type DrainStatus struct {
	PID         int       `json:"pid"`
	Generation  int       `json:"generation"`
	Connections int       `json:"connections"` // -1 when it did not say
	Since       time.Time `json:"since,omitzero"`
	Deadline    time.Time `json:"deadline,omitzero"`
}

// Outcomes of an upgrade in UpgradeRecord.
const (
	OutcomeOK         = "ok"          // the successor became the main process
	OutcomeFailed     = "failed"      // it was killed; the old one kept serving
	OutcomeAbandoned  = "abandoned"   // a stop came first
	OutcomeRolledBack = "rolled-back" // it ended in the watch window; the old one serves again
)

// UpgradeRecord is one upgrade of the service.
type UpgradeRecord struct {
	Generation int           `json:"generation"` // the successor's
	PID        int           `json:"pid"`        // the successor's, 0 when it never started
	Outcome    string        `json:"outcome"`
	Reason     string        `json:"reason,omitempty"`
	Started    time.Time     `json:"started"`
	Duration   time.Duration `json:"-"` // from the request to the hand-over or the failure
}

type upgradeRecordJSON struct {
	Generation int       `json:"generation"`
	PID        int       `json:"pid"`
	Outcome    string    `json:"outcome"`
	Reason     string    `json:"reason,omitempty"`
	Started    time.Time `json:"started"`
	DurationMS float64   `json:"duration_ms"`
}

// MarshalJSON writes Duration as duration_ms, in milliseconds.
func (r UpgradeRecord) MarshalJSON() ([]byte, error) {
	return json.Marshal(upgradeRecordJSON{r.Generation, r.PID, r.Outcome, r.Reason, r.Started, float64(r.Duration) / float64(time.Millisecond)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *UpgradeRecord) UnmarshalJSON(b []byte) error {
	var j upgradeRecordJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*r = UpgradeRecord{j.Generation, j.PID, j.Outcome, j.Reason, j.Started, time.Duration(j.DurationMS * float64(time.Millisecond))}
	return nil
}

// Counters count the service's upgrades since its first generation (they
// travel to successors with the history) and keep the durations of the
// last ones.
type Counters struct {
	UpgradesOK        int `json:"upgrades_ok"`
	UpgradesFailed    int `json:"upgrades_failed"`
	UpgradesAbandoned int `json:"upgrades_abandoned"`
	// UpgradesRolledBack counts successors that ended within the watch
	// window (Config.WatchWindow); UpgradesFailed counts them too.
	UpgradesRolledBack int `json:"upgrades_rolled_back"`
	// HandoffSeconds are the durations of the successful upgrades in
	// Upgrades: from the request to the hand-over.
	HandoffSeconds []float64 `json:"handoff_seconds"`
	// Handoff counts the same durations since the first generation (it
	// travels with the history): for a Prometheus histogram.
	Handoff Histogram `json:"handoff"`
	// DrainSeconds are the drains this generation saw end: from the
	// hand-over to the exit of the generation that drained, the last
	// MaxHistory.
	DrainSeconds []float64 `json:"drain_seconds"`
}

// HandoffBuckets are the upper bounds, in seconds, of Counters.Handoff:
// a hand-over takes milliseconds plus the successor's start-up, and
// ReadyTimeout bounds it.
var HandoffBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Histogram is a cumulative histogram of durations in seconds: Cumulative[i]
// counts the samples at most Bounds[i]; Count counts them all.
type Histogram struct {
	Count      uint64    `json:"count"`
	Sum        float64   `json:"sum"`
	Bounds     []float64 `json:"bounds"`
	Cumulative []uint64  `json:"cumulative"`
}

// observe adds one sample, with HandoffBuckets' bounds when it has none.
func (h *Histogram) observe(v float64) {
	if len(h.Bounds) == 0 || len(h.Cumulative) != len(h.Bounds) {
		h.Bounds, h.Cumulative = append([]float64(nil), HandoffBuckets...), make([]uint64, len(HandoffBuckets))
	}
	h.Count++
	h.Sum += v
	for i, b := range h.Bounds {
		if v <= b {
			h.Cumulative[i]++
		}
	}
}

// MaxHistory is how many upgrades Status.Upgrades keeps.
const MaxHistory = 32

// history is what travels to a successor (envHistory).
type history struct {
	Upgrades   []UpgradeRecord `json:"upgrades"`
	OK         int             `json:"ok"`
	Failed     int             `json:"failed"`
	Abandoned  int             `json:"abandoned"`
	RolledBack int             `json:"rolled_back"`
	Handoff    Histogram       `json:"handoff"`
}

// add appends r, keeping the last MaxHistory, and counts it.
func (h *history) add(r UpgradeRecord) {
	h.Upgrades = append(h.Upgrades, r)
	if n := len(h.Upgrades); n > MaxHistory {
		h.Upgrades = append(h.Upgrades[:0:0], h.Upgrades[n-MaxHistory:]...)
	}
	switch r.Outcome {
	case OutcomeOK:
		h.OK++
		h.Handoff.observe(r.Duration.Seconds())
	case OutcomeFailed:
		h.Failed++
	case OutcomeAbandoned:
		h.Abandoned++
	case OutcomeRolledBack:
		h.Failed++
		h.RolledBack++
	}
}

// connCounter is a Server that counts its connections.
type connCounter interface{ Connections() int }

// Connections returns the number of connections being handled.
func (s *TCPServer) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (u *Upgrader) stateLocked() string {
	switch u.phase {
	case phaseHandedOver:
		return StateDraining
	case phaseWatching:
		return StateWatching
	case phaseStopping, phaseStopped:
		if u.successor != 0 {
			return StateDraining
		}
		return StateStopping
	case phaseServing, phaseUpgrading, phaseProbation:
		return StateServing
	}
	return StateStarting
}

// connectionsLocked sums the connections of the servers that count them,
// -1 when none does.
func (u *Upgrader) connectionsLocked() int {
	n, counted := 0, false
	for _, r := range u.running {
		if c, ok := r.s.(connCounter); ok {
			if k := c.Connections(); k >= 0 {
				n += k
				counted = true
			}
		}
	}
	if !counted {
		return -1
	}
	return n
}

func (h Histogram) clone() Histogram {
	h.Bounds = append([]float64{}, h.Bounds...)
	h.Cumulative = append([]uint64{}, h.Cumulative...)
	return h
}

package handoff

import "fmt"

// phase is where a generation is in its life; the package doc has the
// table of its transitions (Lifecycle). Every change goes through
// Upgrader.enterLocked, which refuses a transition the table does not
// have: a bug, logged and not taken.
type phase uint8

const (
	// phaseStarting: New returned, Ready has not made it main (or is
	// waiting to be told in a successor that has not said READY yet).
	phaseStarting phase = iota
	// phaseAwaitingMain: a successor told its predecessor READY and waits
	// for its answer (SERVE, MAIN or ABORT).
	phaseAwaitingMain
	// phaseProbation: a successor serving in its predecessor's watch
	// window; the predecessor is still the manager's main process, so this
	// one says nothing to the manager.
	phaseProbation
	// phaseServing: the main process, accepting.
	phaseServing
	// phaseUpgrading: the main process, accepting, a successor starting.
	phaseUpgrading
	// phaseWatching: the successor accepts and this generation drains,
	// but keeps the main PID and its sockets for Config.WatchWindow: a
	// successor that ends in the window is rolled back (phaseServing).
	phaseWatching
	// phaseHandedOver: the successor is the main process; this generation
	// drains and exits.
	phaseHandedOver
	// phaseStopping: a stop was asked of the main process: it said
	// STOPPING=1 and serves on for Config.StopDelay.
	phaseStopping
	// phaseStopped: stopped; Done is closed and the servers drain.
	phaseStopped
)

var phaseNames = [...]string{
	phaseStarting:     "starting",
	phaseAwaitingMain: "awaiting main",
	phaseProbation:    "probation",
	phaseServing:      "serving",
	phaseUpgrading:    "upgrading",
	phaseWatching:     "watching",
	phaseHandedOver:   "handed over",
	phaseStopping:     "stopping",
	phaseStopped:      "stopped",
}

func (p phase) String() string {
	if int(p) < len(phaseNames) {
		return phaseNames[p]
	}
	return fmt.Sprintf("phase(%d)", uint8(p))
}

// transitions is the lifecycle: from each phase, the phases it may go to.
// The package doc's table says why each one happens; keep them in step.
var transitions = map[phase][]phase{
	phaseStarting:     {phaseAwaitingMain, phaseServing, phaseStopped},
	phaseAwaitingMain: {phaseProbation, phaseServing, phaseStopped},
	phaseProbation:    {phaseServing, phaseStopped},
	phaseServing:      {phaseUpgrading, phaseStopping},
	phaseUpgrading:    {phaseServing, phaseWatching, phaseHandedOver, phaseStopping},
	phaseWatching:     {phaseServing, phaseHandedOver, phaseStopped},
	// A stop that came during an upgrade waits for its outcome: the
	// successor may have become main meanwhile.
	phaseStopping:   {phaseStopped, phaseHandedOver},
	phaseHandedOver: nil,
	phaseStopped:    nil,
}

// allowed reports whether the lifecycle goes from p to next.
func (p phase) allowed(next phase) bool {
	for _, q := range transitions[p] {
		if q == next {
			return true
		}
	}
	return false
}

// main reports whether the manager knows a generation in phase p as its
// main process: it may talk to the manager (docs/systemd-notes.md, rule 2).
func (p phase) main() bool {
	switch p {
	case phaseServing, phaseUpgrading, phaseWatching, phaseStopping:
		return true
	}
	return false
}

// accepting reports whether the servers of a generation in phase p run:
// Serve starts a server registered late at once.
func (p phase) accepting() bool {
	switch p {
	case phaseProbation, phaseServing, phaseUpgrading, phaseStopping:
		return true
	}
	return false
}

// enterLocked moves the generation to next; called with u.mu held. A move
// the lifecycle does not have is refused and logged (a bug): the caller's
// state stays as it was, and enterLocked reports false.
func (u *Upgrader) enterLocked(next phase) bool {
	if !u.phase.allowed(next) {
		u.log.Error("handoff: lifecycle: transition refused", "from", u.phase.String(), "to", next.String(), "generation", u.gen)
		return false
	}
	u.phase = next
	return true
}

// isClosed reports whether c is closed.
func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

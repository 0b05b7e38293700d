package generation

import (
	"syscall"
	"time"
)

// Outcomes of an upgrade, as `baton status` prints them.
const (
	OK         = "ok"          // the new generation serves
	Failed     = "failed"      // it failed; the old one serves on
	Abandoned  = "abandoned"   // a stop came first
	RolledBack = "rolled-back" // it ended in the watch window; the old one serves again
)

// DefaultMaxDraining is the cap on draining generations when a
// MaxDraining setting is zero: room for a storm of back-to-back upgrades
// with long-lived connections, not for an unbounded pile of processes.
// Negative settings mean no cap.
const DefaultMaxDraining = 8

// MaxDraining returns the cap that a MaxDraining setting v means: v when
// positive, DefaultMaxDraining when zero, 0 (no cap) when negative.
func MaxDraining(v int) int {
	switch {
	case v > 0:
		return v
	case v == 0:
		return DefaultMaxDraining
	}
	return 0
}

// StopRaceGrace is how long an upgrade whose new process ended as a
// stopped process does waits for its own generation's stop.
const StopRaceGrace = 500 * time.Millisecond

// StoppedLike reports whether ws is how a process ends when it is
// stopped: killed by SIGTERM or SIGINT, or exit status 0 (a handoff
// successor stopped before it said READY).
func StoppedLike(ws syscall.WaitStatus) bool {
	if ws.Signaled() {
		return ws.Signal() == syscall.SIGTERM || ws.Signal() == syscall.SIGINT
	}
	return ws.Exited() && ws.ExitStatus() == 0
}

// AwaitStop waits up to StopRaceGrace for stop to be closed and reports
// whether it was: the stop, not the new process's end, is then the
// upgrade's outcome.
func AwaitStop(stop <-chan struct{}) bool {
	t := time.NewTimer(StopRaceGrace)
	defer t.Stop()
	select {
	case <-stop:
		return true
	case <-t.C:
		return false
	}
}

// AppendBounded appends v to h and drops the oldest entries beyond limit,
// reusing h's array: a history of constant size however long the service
// runs.
func AppendBounded[T any](h []T, v T, limit int) []T {
	if len(h) < limit {
		return append(h, v)
	}
	n := copy(h, h[len(h)-limit+1:])
	return append(h[:n], v)
}

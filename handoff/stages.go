package handoff

import (
	"log/slog"
	"os"
	"sync/atomic"
	"time"
)

// stage is one point of an upgrade whose time is recorded, to see where an
// upgrade's time goes. The first ones are the predecessor's, the others
// the successor's.
type stage int

const (
	stageSignal     stage = iota // predecessor: SIGHUP received
	stageUpgrade                 // predecessor: upgrade begun (Upgrade called)
	stageStarted                 // predecessor: successor forked and exec'd
	stageReady                   // predecessor: READY received from the successor
	stageHandedOver              // predecessor: MAINPID sent (and BARRIER done, with a manager)
	stageMainSent                // predecessor: the successor told it is main (MAIN), or to serve in a watch window (SERVE)
	stageDrain                   // predecessor: an HTTPServer's drain began, its listener closed
	stageInit                    // successor: package handoff initialized, main about to run
	stageReadySent               // successor: READY sent to the predecessor
	stageMain                    // successor: its predecessor paused and told it to serve (SERVE), or main (MAIN, an older predecessor)
	stageServing                 // successor: its servers started
	stageAccept                  // successor: first connection accepted by an HTTPServer
	numStages
)

var stageNames = [numStages]string{
	"signal", "upgrade", "started", "ready", "handed_over", "main_sent", "drain",
	"init", "ready_sent", "main", "serving", "accept",
}

// stages holds this process's stage times: CLOCK_MONOTONIC nanoseconds,
// the same clock in every process of the machine, so that a benchmark can
// set them against its own trigger (0: not reached). A process is one
// generation: its successor stages happen once, its predecessor stages
// once per upgrade attempt (the last one's are kept).
var stages struct {
	t   [numStages]atomic.Int64
	log atomic.Pointer[slog.Logger]
}

func init() { markStage(stageInit) }

// stage records s, and logs the stages at debug level once the upgrade's
// side of this process is complete: for the predecessor when the
// successor is told it is main (and its drain's start in a line of its
// own), for a successor once it serves and an HTTPServer has accepted its
// first connection.
func (u *Upgrader) stage(s stage) {
	stages.log.Store(u.log)
	switch s {
	case stageSignal:
		stages.t[s].Store(monotonicNS())
	case stageUpgrade:
		// A new attempt: forget the previous one's later stages.
		for i := stageStarted; i <= stageDrain; i++ {
			stages.t[i].Store(0)
		}
		stages.t[s].Store(monotonicNS())
	default:
		// The first time per attempt (a watch window's MAIN comes after
		// its SERVE) and per process.
		if !stages.t[s].CompareAndSwap(0, monotonicNS()) {
			return
		}
		switch s {
		case stageMainSent:
			logStages("predecessor", stageSignal, stageMainSent, u.gen)
		case stageServing:
			logSuccessor()
		}
	}
}

// successorLogged: the successor's stages are logged once, when both its
// first accept (from READY on) and its serving stage are recorded.
var successorLogged atomic.Bool

func logSuccessor() {
	if stages.t[stageAccept].Load() == 0 || stages.t[stageServing].Load() == 0 {
		return
	}
	if successorLogged.CompareAndSwap(false, true) {
		logStages("successor", stageInit, stageAccept, 0)
	}
}

// markStage records stageInit, stageAccept (in a successor) or
// stageDrain (in a predecessor, after the hand-over); the last two once,
// then logged, and after that they cost an atomic load.
func markStage(s stage) {
	var after stage
	switch s {
	case stageAccept:
		after = stageReadySent // a successor accepts from READY on
	case stageDrain:
		after = stageMainSent
	default:
		stages.t[s].Store(monotonicNS())
		return
	}
	if stages.t[s].Load() != 0 || stages.t[after].Load() == 0 {
		return // not the first, or not after an upgrade
	}
	if !stages.t[s].CompareAndSwap(0, monotonicNS()) {
		return
	}
	if s == stageAccept {
		logSuccessor()
	} else {
		logStages("predecessor", stageDrain, stageDrain, 0)
	}
}

// logStages logs the stages from..to as one line: CLOCK_MONOTONIC
// nanoseconds of each, and the time from the first to the last.
func logStages(role string, from, to stage, gen int) {
	log := stages.log.Load()
	if log == nil {
		return
	}
	attrs := []any{"role", role, "pid", os.Getpid(), "clock", "CLOCK_MONOTONIC ns"}
	if gen > 0 {
		attrs = append(attrs, "generation", gen)
	}
	var first, last int64
	for i := from; i <= to; i++ {
		t := stages.t[i].Load()
		attrs = append(attrs, stageNames[i], t)
		if t != 0 && first == 0 {
			first = t
		}
		last = max(last, t)
	}
	attrs = append(attrs, "took", time.Duration(last-first))
	log.Debug("upgrade stages", attrs...)
}

package handoff

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// This file is the generation: its phases, the transitions between them
// (the package doc's Lifecycle table) and what each transition does. The
// hand-over protocol around it is in predecessor_linux.go (the side that
// starts a successor and hands over) and successor_linux.go (the side that
// takes over).

// phase is where a generation is in its life. Every change goes through
// Upgrader.enterLocked, which refuses a transition the table does not
// have and runs the effects of the ones it has.
type phase uint8

const (
	// phaseStarting: New returned, Ready has not made it main (or is
	// waiting to be told in a successor that has not said READY yet).
	phaseStarting phase = iota
	// phaseAwaitingMain: a successor told its predecessor READY, accepts
	// from then on, and waits for its answer (SERVE, MAIN or ABORT).
	phaseAwaitingMain
	// phaseProbation: a successor serving while its predecessor, paused,
	// still holds the main PID (the cut-over, and the watch window when
	// there is one); it says nothing to the manager.
	phaseProbation
	// phaseServing: the main process, accepting.
	phaseServing
	// phaseUpgrading: the main process, accepting, a successor starting.
	phaseUpgrading
	// phaseWatching: the successor accepts; this generation has paused
	// accepting (reversibly: nothing is drained) and keeps the main PID
	// and its sockets until the main PID moves (at once, or when
	// Config.WatchWindow has passed). A successor that ends meanwhile is
	// rolled back (phaseServing).
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
// The package doc's table says why each one happens; keep them in step
// (TestLifecycleTable).
var transitions = map[phase][]phase{
	phaseStarting:     {phaseAwaitingMain, phaseServing, phaseStopped},
	phaseAwaitingMain: {phaseProbation, phaseServing, phaseStopped},
	phaseProbation:    {phaseServing, phaseStopped},
	phaseServing:      {phaseUpgrading, phaseStopping},
	// A successor of a release that cannot serve before it is main goes
	// from upgrading to handed over; every other one through watching.
	phaseUpgrading: {phaseServing, phaseWatching, phaseHandedOver, phaseStopping},
	phaseWatching:  {phaseServing, phaseHandedOver, phaseStopped},
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

// accepting reports whether a generation in phase p accepts: its servers
// run and its listeners are not paused.
func (p phase) accepting() bool {
	switch p {
	case phaseAwaitingMain, phaseProbation, phaseServing, phaseUpgrading, phaseStopping:
		return true
	}
	return false
}

// errTransition is wrapped by the error of a lifecycle transition that
// the table does not have: a bug in this package, reported to the caller
// that asked for it.
var errTransition = errors.New("lifecycle: transition refused")

// enterLocked moves the generation to next and runs the transition's
// effects; called with u.mu held. A move the lifecycle does not have is
// refused: the state stays as it was, the refusal is logged and counted
// (Status), and the error returned.
//
// The effects, one place for each:
//   - into awaiting main: the listeners pause and the servers accepting
//     on them start (holdLocked, in awaitMain), to resume once READY is
//     written;
//   - into probation or serving (from starting or awaiting main): the
//     listeners still held resume and the registered servers not started
//     yet start;
//   - into watching: every listener Listen returned is paused;
//   - from watching into serving (a rollback): they are resumed, and
//     servers registered meanwhile start;
//   - into handed over or stopped: Done is closed, what only a main
//     generation runs stops, and the drain of every started server
//     starts (drainLocked), there and nowhere else.
func (u *Upgrader) enterLocked(next phase) error {
	from := u.phase
	if !from.allowed(next) {
		u.refused++
		err := fmt.Errorf("handoff: %w: from %s to %s", errTransition, from, next)
		u.log.Error("handoff: lifecycle: transition refused", "from", from.String(), "to", next.String(), "generation", u.gen)
		if u.onRefused != nil {
			u.onRefused(err)
		}
		return err
	}
	u.phase = next
	switch next {
	case phaseProbation:
		u.releaseLocked()
		u.startServersLocked()
	case phaseServing:
		if from == phaseWatching {
			u.resumeLocked()
		}
		u.releaseLocked()
		u.startServersLocked()
	case phaseWatching:
		u.pauseLocked()
	case phaseHandedOver, phaseStopped:
		u.endLocked()
		u.drainLocked()
	}
	return nil
}

// startServersLocked starts the registered servers not started yet;
// called with u.mu held.
func (u *Upgrader) startServersLocked() { u.startServersWhileLocked(nil) }

// startServersWhileLocked starts the registered servers not started yet,
// in order, as long as ok (nil: all) says so of the next; called with
// u.mu held.
func (u *Upgrader) startServersWhileLocked(ok func(Server) bool) {
	for ; u.started < len(u.servers); u.started++ {
		s := u.servers[u.started]
		if ok != nil && !ok(s) {
			return
		}
		r := &running{s: s, done: make(chan struct{})}
		u.running = append(u.running, r)
		go func() {
			defer close(r.done)
			if err := s.Serve(); err != nil {
				select {
				case u.serveErr <- err:
				default:
				}
			}
		}()
	}
}

// running is a server whose Serve was started.
type running struct {
	s    Server
	done chan struct{} // closed when its Serve returned
}

// drainLocked starts the drain of every started server, once, under
// DrainTimeout; Wait waits for it. Called with u.mu held, by enterLocked.
func (u *Upgrader) drainLocked() {
	if u.drainStarted {
		return
	}
	u.drainStarted = true
	u.drainSince = time.Now()
	servers := u.running
	u.wg.Go(func() {
		err := u.drain(servers)
		u.mu.Lock()
		u.drainErr = err
		u.mu.Unlock()
		close(u.drained)
	})
}

// drain shuts servers down under DrainTimeout.
func (u *Upgrader) drain(servers []*running) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), u.cfg.drainTimeout())
	defer cancel()
	ctx = u.drainContext(ctx)
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, r := range servers {
		wg.Go(func() { errs[i] = r.s.Shutdown(ctx) })
	}
	wg.Wait()
	for _, r := range servers {
		<-r.done
	}
	err := errors.Join(errs...)
	if len(servers) > 0 {
		u.log.Info("drained", "generation", u.gen, "took", time.Since(start), "err", err)
	}
	return err
}

// drainContext is ctx carrying what the servers' drains take from
// Config (StreamGrace, NewConnGrace).
func (u *Upgrader) drainContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, drainKey{}, drainConfig{streamGrace: u.cfg.streamGrace(), newConnGrace: u.cfg.newConnGrace()})
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

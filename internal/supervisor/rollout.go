package supervisor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/batonhq/baton/internal/generation"
)

// UpgradeOptions are the options of UpgradeWith. The zero value is
// Upgrade's.
type UpgradeOptions struct {
	// WaitWindow makes UpgradeWith return when the watch window ends,
	// not at the cut-over: nil when it passed, an error wrapping
	// ErrRolledBack when the new CMD exited within it.
	WaitWindow bool
}

// opUpgrade and opWindow are the operations of an upgrade.
const (
	opUpgrade = "upgrade"
	opWindow  = "watch window"
)

// Upgrade is UpgradeWith with the zero UpgradeOptions.
func (s *Supervisor) Upgrade(ctx context.Context) (int, error) {
	return s.UpgradeWith(ctx, UpgradeOptions{})
}

// UpgradeWith starts a new CMD, waits until it is ready, makes it the
// serving one and sends SIGTERM to the old one, which gets Drain to exit
// before SIGKILL. It returns the new CMD's pid. When the new CMD fails (a
// *StartError) it is killed and the old one keeps serving. Only one upgrade
// runs at a time: a concurrent call returns an error wrapping
// ErrInProgress, also while a watch window runs (Config.WatchWindow; the
// old CMD gets its SIGTERM when the window passes) or a pool's worker
// starts. After Stop, or when a stop abandons it, the error wraps
// ErrStopping.
//
// In a pool (Config.Workers above 1) every worker is replaced, at most
// MaxSurge at a time: each new one ready before an old one is stopped, and
// the next ones started only while no more than Workers+MaxSurge CMDs
// serve or start; replaced ones drain meanwhile, not waited for (their
// number is bounded by MaxDraining). It returns the first worker's pid when the last
// old one is stopped. A new worker that fails stops the roll-out: the
// other new ones are stopped too, so that one version serves (the old
// one, in the slots not replaced yet; the replaced ones stay vacant until
// the next upgrade or Scale, since the old version cannot be started
// again: the file on disk is the new one).
func (s *Supervisor) UpgradeWith(ctx context.Context, opts UpgradeOptions) (int, error) {
	if err := s.claim(opUpgrade); err != nil {
		return 0, err
	}
	defer s.release(opUpgrade)
	return s.rollOut(ctx, opts)
}

// claim makes op the operation that changes the serving set, or returns
// why not.
func (s *Supervisor) claim(op string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.running:
		return ErrNotRunning
	case s.isStoppingLocked():
		return ErrStopping
	case len(s.slots) == 0:
		return fmt.Errorf("%w (first start)", ErrInProgress)
	case s.window != nil:
		return fmt.Errorf("%w (watch window until %s)", ErrInProgress, s.window.until.Format(timeFormat))
	case s.op == opUpgrade:
		return fmt.Errorf("pid %d serving: %w", s.pidLocked(), ErrInProgress)
	case s.op != "":
		return fmt.Errorf("%w (%s)", ErrInProgress, s.op)
	}
	s.op = op
	return nil
}

// timeFormat is how errors and STATUS= name a time.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

// release ends the operation op, if it is still the one running.
func (s *Supervisor) release(op string) {
	s.mu.Lock()
	mine := s.op == op
	if mine {
		s.op = ""
	}
	s.mu.Unlock()
	if mine {
		select {
		case s.idle <- struct{}{}:
		default:
		}
	}
}

// upgradeAsync starts an upgrade in a goroutine; it reports false when
// another operation runs.
func (s *Supervisor) upgradeAsync(ctx context.Context) bool {
	if s.claim(opUpgrade) != nil {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.release(opUpgrade)
		if _, err := s.rollOut(ctx, UpgradeOptions{}); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, ErrNotRunning) && !errors.Is(err, ErrStopping) {
			s.log.Error("upgrade", "err", err)
		}
	}()
	return true
}

// rollOut is the upgrade, once claimed: batches of new CMDs, each one
// taking over a slot when ready.
func (s *Supervisor) rollOut(ctx context.Context, opts UpgradeOptions) (int, error) {
	begun := time.Now()
	note := s.capDraining()
	status := "upgrading"
	if note != "" {
		status += "; " + note
		note = "; " + note
	}
	s.manager(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d\nSTATUS=%s", monotonicUsec(), status))
	s.mu.Lock()
	s.version++
	version, n := s.version, len(s.slots)
	s.mu.Unlock()
	var fresh []*child // this roll-out's CMDs that serve
	oldPID := 0        // the first CMD replaced, for the log
	for next := 0; next < n; {
		k, err := s.room(ctx, n-next)
		if err != nil {
			return 0, fmt.Errorf("%w: %w", ErrStopping, err)
		}
		cs, err := s.startBatch(ctx, next, k, version)
		if err == nil {
			// A new worker of an earlier batch that died fails the roll-out too.
			if err = exitedOf(fresh); err != nil {
				for _, c := range cs {
					s.terminate(c)
				}
			}
		}
		if se := (*StartError)(nil); errors.As(err, &se) {
			s.awaitStopRace(se.Status)
		}
		s.mu.Lock()
		stopping := s.isStoppingLocked()
		switch {
		case err == nil && stopping:
			// Stopped while the new CMDs started: they go, the old ones
			// stay to receive the stop.
			s.mu.Unlock()
			for _, c := range cs {
				s.terminate(c)
			}
			return 0, fmt.Errorf("new pid %d stopped: %w", cs[0].pid, ErrStopping)
		case err != nil && stopping:
			// Also when the failure came first: under systemd the new CMD
			// gets the stop's SIGTERM too.
			s.mu.Unlock()
			return 0, fmt.Errorf("%w: %w", ErrStopping, err)
		case err != nil:
			s.mu.Unlock()
			return 0, s.failed(begun, version, fresh, err, note)
		}
		olds := s.cutOver(next, cs)
		s.mu.Unlock()
		fresh = append(fresh, cs...)
		next += k
		if s.cfg.WatchWindow > 0 && olds[0] != nil {
			return s.watch(ctx, opts, begun, olds[0], cs[0], note)
		}
		for _, o := range olds {
			if o != nil {
				oldPID = cmp.Or(oldPID, o.pid)
				s.retire(o)
			}
		}
		if s.cfg.pool() {
			s.log.Info("workers replaced", "version", version, "done", next, "of", n)
		}
	}
	s.mu.Lock()
	s.stats.Upgrades++
	s.record(Outcome{Version: version, Generation: fresh[0].n, PID: fresh[0].pid, Outcome: OutcomeOK, Started: begun, Duration: time.Since(begun)})
	s.mu.Unlock()
	s.manager("READY=1\n" + s.statusLine() + note)
	if !s.cfg.pool() {
		s.log.Info("upgraded", "pid", fresh[0].pid, "generation", fresh[0].n, "old", oldPID)
	} else {
		s.log.Info("upgraded", "version", version, "workers", n, "pid", fresh[0].pid)
	}
	return fresh[0].pid, nil
}

// cutOver makes the ready CMDs cs the serving ones of the slots from
// first on, and returns the CMDs they replace (nil for a vacant slot); with
// a watch window those are left on standby. s.mu is held.
func (s *Supervisor) cutOver(first int, cs []*child) []*child {
	olds := make([]*child, len(cs))
	for j, c := range cs {
		sl := s.slots[first+j]
		olds[j] = sl.c
		if s.cfg.WatchWindow > 0 && sl.c != nil && sl.c.to(stateStandby) != nil {
			olds[j] = nil // it exited: nothing to watch against
		}
		sl.c, sl.due, sl.crashed = c, time.Time{}, false
		_ = c.to(stateServing)
	}
	return olds
}

// exitedOf returns an error for the first of cs that has exited.
func exitedOf(cs []*child) error {
	for _, c := range cs {
		if isClosed(c.done) {
			return &StartError{Path: c.path, PID: c.pid, Status: &c.status, Err: fmt.Errorf("%w: new worker exited during the roll-out", ErrExited)}
		}
	}
	return nil
}

// room returns how many CMDs the roll-out may start now (at most want):
// with one worker, one; in a pool, as many as keep the CMDs that serve or
// start at Workers+MaxSurge at most. Draining CMDs (replaced, SIGTERM
// sent) are not counted: they accept nothing, and waiting for each one's
// whole drain made a roll-out of n workers take n drains (idle keep-alive
// connections hold a drain for seconds). MaxDraining bounds them.
func (s *Supervisor) room(ctx context.Context, want int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if !s.cfg.pool() {
		return 1, nil
	}
	s.mu.Lock()
	free := len(s.slots) + s.cfg.MaxSurge - s.liveLocked()
	stopping := s.isStoppingLocked()
	s.mu.Unlock()
	if stopping {
		return 0, context.Canceled
	}
	return max(1, min(free, want)), nil
}

// liveLocked is how many CMDs run that are not draining: serving, or
// starting. s.mu is held.
func (s *Supervisor) liveLocked() int {
	n := len(s.byPID)
	for _, c := range s.retired {
		if _, ok := s.byPID[c.pid]; ok && !isClosed(c.done) {
			n--
		}
	}
	return n
}

// startBatch starts k CMDs for the slots from first on, side by side, and
// returns them once all are ready. When one fails, the others are stopped
// and the first failure (by slot) is returned.
func (s *Supervisor) startBatch(ctx context.Context, first, k, version int) ([]*child, error) {
	cs := make([]*child, k)
	errs := make([]error, k)
	if k == 1 {
		cs[0], errs[0] = s.start(ctx, first, version)
	} else {
		done := make(chan struct{})
		for j := range k {
			go func() {
				defer func() { done <- struct{}{} }()
				cs[j], errs[j] = s.start(ctx, first+j, version)
			}()
		}
		for range k {
			<-done
		}
	}
	for _, err := range errs {
		if err != nil {
			for _, c := range cs {
				if c != nil {
					s.terminate(c)
				}
			}
			return nil, err
		}
	}
	return cs, nil
}

// failed ends a roll-out whose new CMD failed: the ones this roll-out made
// serve are stopped (their slots left vacant), the old ones serve on.
func (s *Supervisor) failed(begun time.Time, version int, fresh []*child, err error, note string) error {
	s.mu.Lock()
	s.stats.FailedUpgrades++
	s.unversion(version)
	r := Outcome{Version: version, Outcome: OutcomeFailed, Reason: err.Error(), Started: begun, Duration: time.Since(begun)}
	var se *StartError
	if errors.As(err, &se) && se.PID != 0 {
		r.PID = se.PID
		if c := s.byPID[se.PID]; c != nil {
			r.Generation = c.n
		} else {
			r.Generation = s.stats.Generations // the last one started: with one at a time, this one
		}
	}
	s.record(r)
	for _, c := range fresh {
		if sl := s.slots[c.slot]; sl.c == c {
			sl.c = nil
		}
	}
	serving, pid := s.servingSetLocked(), s.pidLocked()
	s.mu.Unlock()
	for _, c := range fresh {
		s.retire(c)
	}
	if !s.cfg.pool() {
		s.log.Warn("upgrade rolled back", "err", err, "serving", pid)
		s.manager(fmt.Sprintf("READY=1\nSTATUS=upgrade failed, pid %d still serving: %v%s", pid, err, note))
		return err
	}
	s.log.Warn("roll-out stopped, new workers stopped", "err", err, "stopped", len(fresh), "serving", len(serving), "workers", len(s.slots))
	s.manager(fmt.Sprintf("READY=1\nSTATUS=upgrade failed, %d of %d workers (the old version) serving: %v%s", len(serving), len(s.slots), err, note))
	return err
}

// unversion takes back the version of an upgrade that did not stick, so
// that versions count the upgrades that did (and a restarted worker gets
// the serving one). s.mu is held.
func (s *Supervisor) unversion(v int) {
	if s.version == v {
		s.version--
	}
}

// capDraining applies Config.MaxDraining before an upgrade: it forgets
// the replaced CMDs that have exited and kills the oldest of the others
// while they, plus the serving one, would be more than the cap. It returns
// what it did for STATUS=, "" when nothing.
func (s *Supervisor) capDraining() string {
	limit := s.cfg.maxDraining()
	s.mu.Lock()
	live := s.retired[:0]
	for _, c := range s.retired {
		if !isClosed(c.done) {
			live = append(live, c)
		}
	}
	clear(s.retired[len(live):])
	var kill []*child
	for limit > 0 && len(live) > 0 && len(live)+1 > limit {
		kill = append(kill, live[0])
		live = live[1:]
	}
	s.retired = live
	s.stats.ForceClosed += len(kill)
	s.mu.Unlock()
	notes := make([]string, 0, len(kill))
	for _, c := range kill {
		s.kill(c)
		msg := fmt.Sprintf("force-closed draining generation %d (pid %d): MaxDraining=%d", c.n, c.pid, limit)
		s.log.Warn(msg, "pid", c.pid, "generation", c.n, "max_draining", limit)
		notes = append(notes, msg)
	}
	return strings.Join(notes, "; ")
}

// awaitStopRace waits up to generation.StopRaceGrace for Stop when a new CMD ended as
// a stopped process ends (killed by SIGTERM or SIGINT, or exit status 0):
// a stop of the service signals its whole cgroup, and the new CMD may end
// before baton's own SIGTERM is handled. The stop is then the outcome.
func (s *Supervisor) awaitStopRace(st *ExitStatus) {
	if st == nil || st.Signal != syscall.SIGTERM && st.Signal != syscall.SIGINT && (st.Signal != 0 || st.Code != 0) {
		return
	}
	s.mu.Lock()
	stopping := s.stopping
	s.mu.Unlock()
	generation.AwaitStop(stopping)
}

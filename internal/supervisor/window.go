package supervisor

import (
	"context"
	"fmt"
	"time"
)

// window is a watch window after a cut-over: old is on standby, still
// running and accepting on the shared sockets, until the window passes.
type window struct {
	cut      time.Time // the cut-over
	until    time.Time
	old, new *child
	begun    time.Time // the upgrade's start
	note     string    // the upgrade's STATUS= note
	result   chan error
}

// watch opens the watch window of an upgrade whose new CMD nw has just
// taken over from old: the upgrade operation becomes the window's, and
// Upgrade returns now, or with opts.WaitWindow when the window ends.
func (s *Supervisor) watch(ctx context.Context, opts UpgradeOptions, begun time.Time, old, nw *child, note string) (int, error) {
	now := time.Now()
	w := &window{cut: now, until: now.Add(s.cfg.WatchWindow), old: old, new: nw, begun: begun, note: note, result: make(chan error, 1)}
	s.mu.Lock()
	s.window, s.op = w, opWindow
	s.mu.Unlock()
	s.manager(fmt.Sprintf("READY=1\n%s; watch window until %s, pid %d on standby%s", s.statusOf(nw), w.until.Format(timeFormat), old.pid, note))
	s.log.Info("upgraded, watch window", "pid", nw.pid, "generation", nw.n, "old", old.pid, "until", w.until.Format(timeFormat))
	s.wg.Add(1)
	go s.runWindow(w)
	if !opts.WaitWindow {
		return nw.pid, nil
	}
	select {
	case err := <-w.result:
		if err != nil {
			return 0, err
		}
		return nw.pid, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// runWindow waits for the window's outcome: it passes (the old CMD is
// retired), the new CMD exits (rollback: the old one serves on alone), the
// old one exits (nothing to roll back to: the window ends), or a stop.
func (s *Supervisor) runWindow(w *window) {
	defer s.wg.Done()
	defer s.release(opWindow)
	t := time.NewTimer(time.Until(w.until))
	defer t.Stop()
	var err error
	ended := false
	select {
	case <-t.C:
		// The new CMD's exit may be due too (select picks either of two
		// ready cases) or not reaped yet: it still wins, as the rollback
		// it is, rather than leave a dead CMD serving alone.
		if ended = isClosed(w.new.done) || exitPending(w.new.pid); !ended {
			s.windowPassed(w, "watch window passed")
		}
	case <-w.old.done:
		s.windowPassed(w, "old process exited in the watch window")
	case <-w.new.done:
		ended = true
	case <-s.stopping:
		err = s.windowStopped(w)
	}
	if ended {
		<-w.new.done
		s.awaitStopRace(&w.new.status)
		if s.Stopping() {
			err = s.windowStopped(w)
		} else {
			err = s.rollBack(w)
		}
	}
	w.result <- err
}

func (s *Supervisor) windowPassed(w *window, msg string) {
	s.mu.Lock()
	s.window = nil
	s.stats.Upgrades++
	s.record(Outcome{Version: w.new.version, Generation: w.new.n, PID: w.new.pid, Outcome: OutcomeOK, Started: w.begun, Duration: time.Since(w.begun)})
	s.mu.Unlock()
	s.log.Info(msg, "pid", w.new.pid, "old", w.old.pid)
	s.retire(w.old)
	s.manager(s.statusOf(w.new))
}

// rollBack makes the standby CMD the serving one again.
func (s *Supervisor) rollBack(w *window) error {
	s.mu.Lock()
	s.window = nil
	if sl := s.slots[0]; sl.c == w.new && w.old.to(stateServing) == nil {
		sl.c = w.old
	}
	s.stats.RolledBack++
	s.unversion(w.new.version)
	after := time.Since(w.new.exitedAt)
	err := fmt.Errorf("%w: new pid %d ended (%s) %s after the cut-over; pid %d serves again",
		ErrRolledBack, w.new.pid, w.new.status, w.new.exitedAt.Sub(w.cut).Round(time.Millisecond), w.old.pid)
	s.record(Outcome{Version: w.new.version, Generation: w.new.n, PID: w.new.pid, Outcome: OutcomeRolledBack, Reason: err.Error(), Started: w.begun, Duration: time.Since(w.begun)})
	s.mu.Unlock()
	s.log.Warn("upgrade rolled back in the watch window", "pid", w.new.pid, "status", w.new.status.String(), "serving", w.old.pid, "after", after)
	s.manager(fmt.Sprintf("STATUS=rolled back: pid %d %s in the watch window, pid %d serving%s", w.new.pid, w.new.status, w.old.pid, w.note))
	return err
}

// windowStopped ends a window that a stop cut short: the stop stops both
// CMDs.
func (s *Supervisor) windowStopped(w *window) error {
	s.mu.Lock()
	s.window = nil
	s.mu.Unlock()
	return fmt.Errorf("watch window of pid %d cut short: %w", w.new.pid, ErrStopping)
}

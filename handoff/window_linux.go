package handoff

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/batonhq/baton/internal/generation"
)

// window is a watch window (Config.WatchWindow) run by the predecessor:
// from the cut-over, when the successor started serving, until until.
type window struct {
	gen, pid int
	conn     *net.UnixConn // the hand-over channel
	w        *watched
	until    time.Time
	done     chan struct{} // closed when the window has ended, one way or another
	// Set before done is closed: whether the successor was rolled back,
	// and why (an *UpgradeError, Stage "watch").
	rolledBack bool
	err        error
}

// cutOver pauses this generation's listeners (phaseWatching) and tells
// the successor, ready, to serve (SERVE): from then on it accepts, and
// this generation, still the main process, takes no new connection. A
// stop that came first abandons the upgrade. When SERVE cannot be
// written the caller's failure path resumes accepting.
func (u *Upgrader) cutOver(conn *net.UnixConn, w *watched, pid int) error {
	u.mu.Lock()
	if u.phase != phaseUpgrading {
		u.mu.Unlock()
		abort(conn, "stopping")
		return fmt.Errorf("%w (successor killed: %s)", ErrStopping, w.kill())
	}
	err := u.enterLocked(phaseWatching)
	u.mu.Unlock()
	if err != nil {
		abort(conn, "lifecycle")
		return fmt.Errorf("%w (successor killed: %s)", err, w.kill())
	}
	if _, err := conn.Write([]byte(msgServe)); err != nil {
		return fmt.Errorf("%w before it could serve: %s", ErrSuccessorExited, w.reap(exitGrace))
	}
	return nil
}

// startWindow starts the watch window after the cut-over. The manager
// gets READY=1, which ends the reload job, with a STATUS= saying who
// serves.
func (u *Upgrader) startWindow(conn *net.UnixConn, w *watched, mgr notifier, gen, pid int) *window {
	win := &window{gen: gen, pid: pid, conn: conn, w: w, until: time.Now().Add(u.cfg.WatchWindow), done: make(chan struct{})}
	status := fmt.Sprintf("serving, generation %d, pid %d, watched until %s; generation %d (pid %d) holds the main PID, paused",
		gen, pid, win.until.Format(time.RFC3339), u.gen, os.Getpid())
	if err := mgr.Send("READY=1\nSTATUS=" + oneLine(status)); err != nil {
		u.log.Warn("sd_notify", "err", err)
	}
	return win
}

// watchWindow runs the window: it ends quietly with the main PID handed
// over (endWindow), with a rollback when the successor ends first, or
// with this generation's stop.
func (u *Upgrader) watchWindow(win *window, mgr notifier) {
	defer close(win.done)
	heard := make(chan string, 1)
	go func() {
		// The successor says STOPPING when it is stopped; its end of the
		// channel closes when it exits. Ends when conn is closed.
		var buf [64]byte
		n, err := win.conn.Read(buf[:])
		if err != nil {
			heard <- ""
			return
		}
		heard <- string(buf[:n])
	}()
	t := time.NewTimer(time.Until(win.until))
	defer t.Stop()
	select {
	case <-t.C:
		u.endWindow(win, mgr)
	case m := <-heard:
		why := u.successorEnded(win, m)
		u.rollBack(win, mgr, why)
	case <-u.ctx.Done():
		u.abandonWindow(win)
	}
}

// exitSettle is how long a successor whose channel closed gets to be seen
// exited: the kernel closes its fds before it becomes a zombie.
const exitSettle = 100 * time.Millisecond

// successorEnded says how the successor ended its probation (m is what it
// said, "" when its channel closed). A successor stopped as the whole
// service is (SIGTERM to every process of the unit) may have been
// faster than this generation's own stop: that is given
// generation.StopRaceGrace to arrive.
func (u *Upgrader) successorEnded(win *window, m string) error {
	var why error
	stopped := false
	switch {
	case m == msgStopping:
		why, stopped = errors.New("successor stopped"), true
	case m == "" && win.w.wait(exitSettle):
		st, how := win.w.reapState(0)
		why, stopped = fmt.Errorf("%w: %s", ErrSuccessorExited, how), stoppedLike(st)
	case m == "":
		why = fmt.Errorf("%w: closed the hand-over channel", ErrSuccessorExited)
	default:
		why = fmt.Errorf("successor said %q", m)
	}
	if stopped {
		generation.AwaitStop(u.ctx.Done())
	}
	return why
}

// endWindow hands the main PID to the successor once the window has
// passed: it is still alive (its pidfd says so; a successor that has just
// exited is an unreaped child of this process, a zombie, and systemd
// refuses a zombie as MAINPID), MAINPID=, BARRIER=1, MAIN. A successor
// that ended meanwhile is rolled back.
func (u *Upgrader) endWindow(win *window, mgr notifier) {
	u.mu.Lock()
	if u.phase != phaseWatching {
		u.mu.Unlock()
		u.abandonWindow(win)
		return
	}
	// A stop now waits for the outcome (Stop).
	handing := make(chan struct{})
	u.upgradeDone = handing
	u.mu.Unlock()
	var err error
	if win.w.exited() {
		err = fmt.Errorf("%w at the end of the watch window: %s", ErrSuccessorExited, win.w.reap(0))
	} else {
		// MAINPID= alone: the manager had READY=1 at the window's start,
		// and systemd 258 and later leave a reload job (ExecReload=
		// baton reload --wait-window, still running) waiting for ever
		// after a second READY=1.
		err = u.handOverMain(win.conn, win.w, mgr, win.pid, func(pid int) error {
			return mgr.Send("MAINPID=" + strconv.Itoa(pid))
		})
	}
	u.mu.Lock()
	u.upgradeDone = nil
	close(handing)
	if err != nil {
		u.mu.Unlock()
		u.rollBack(win, mgr, err)
		return
	}
	err = u.enterLocked(phaseHandedOver) // starts the drain
	u.window = nil
	u.mu.Unlock()
	if err != nil {
		u.log.Error("watch window", "err", err)
	}
	_ = win.conn.Close()
	win.w.close()
	_ = win.w.p.Release()
	u.log.Info("handed over after the watch window", "generation", win.gen, "pid", win.pid)
}

// rollBack makes this generation serve again: its listeners resume
// accepting, the manager is told (STATUS=) and the history records it. The
// successor is reaped in the background (a stopped one drains first).
func (u *Upgrader) rollBack(win *window, mgr notifier, why error) {
	u.mu.Lock()
	if u.phase != phaseWatching {
		u.mu.Unlock()
		u.abandonWindow(win)
		return
	}
	if err := u.enterLocked(phaseServing); err != nil { // resumes accepting
		u.mu.Unlock()
		u.log.Error("rollback", "err", err)
		u.abandonWindow(win)
		return
	}
	u.window, u.successor, u.drainSince = nil, 0, time.Time{}
	ue := &UpgradeError{Generation: win.gen, PID: win.pid, Stage: "watch", Err: fmt.Errorf("%w: %w", ErrRolledBack, why)}
	u.recordFailure(ue)
	u.mu.Unlock()
	status := fmt.Sprintf("serving, generation %d, pid %d; rolled back generation %d (pid %d): %v", u.gen, os.Getpid(), win.gen, win.pid, why)
	if err := mgr.Send("STATUS=" + oneLine(status)); err != nil {
		u.log.Warn("sd_notify", "err", err)
	}
	u.log.Warn("rolled back", "generation", u.gen, "successor", win.pid, "reason", why.Error())
	win.rolledBack, win.err = true, ue
	_ = win.conn.Close()
	u.successors.Go(func() {
		win.w.reap(u.cfg.drainTimeout() + exitGrace)
		win.w.close()
	})
}

// abandonWindow ends a window because this generation stops: the
// successor is told to stop too (ABORT) and reaped in the background.
func (u *Upgrader) abandonWindow(win *window) {
	abort(win.conn, "stopping")
	_ = win.conn.Close()
	u.successors.Go(func() {
		win.w.reap(u.cfg.drainTimeout() + u.cfg.StopDelay + exitGrace)
		win.w.close()
	})
}

// UpgradeWatched is Upgrade that returns when the watch window has ended
// (Config.WatchWindow; without one it is Upgrade): the successor's pid
// when it was handed the main PID, an *UpgradeError with Stage "watch"
// wrapping ErrRolledBack when it ended within the window and this
// generation serves again. ctx bounds the wait for the window, not the
// window itself.
func (u *Upgrader) UpgradeWatched(ctx context.Context) (int, error) {
	pid, win, err := u.upgradeWatch(ctx)
	if err != nil || win == nil {
		return pid, err
	}
	select {
	case <-win.done:
	case <-ctx.Done():
		return pid, ctx.Err()
	}
	if win.rolledBack {
		return 0, win.err
	}
	if u.ctx.Err() != nil && !u.HandedOver() {
		return 0, &UpgradeError{Generation: win.gen, PID: pid, Stage: "watch", Err: ErrStopping}
	}
	return pid, nil
}

// waitSuccessors waits until the successors this generation rolled back
// or told to stop in a watch window have exited (the window's end
// included, which starts the last reap).
func (u *Upgrader) waitSuccessors() {
	u.mu.Lock()
	win := u.window
	u.mu.Unlock()
	if win != nil {
		<-win.done
	}
	u.successors.Wait()
}

package handoff

// The predecessor's side of the hand-over: the generation that starts its
// successor (Upgrade), waits for READY, pauses and tells it to serve
// (SERVE), and hands it the main PID (MAINPID=, BARRIER=1, MAIN), at once
// or at the end of a watch window (window_linux.go). The successor's side
// is successor_linux.go; the phases both go through, generation.go.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	// Also, through its init, what sets LISTEN_PID in a successor before
	// its main runs.
	"github.com/batonhq/baton/internal/generation"
	"github.com/batonhq/baton/internal/spawn"
)

// exitGrace is how long a successor that closed its hand-over channel gets
// to exit on its own (so its real exit status is reported) before it is
// killed.
const exitGrace = time.Second

// Upgrade starts the executable on disk as the successor generation with
// this generation's sockets and waits until it is ready, then hands it the
// main PID and returns its pid; Done is closed and the caller's Wait
// drains this generation. With Config.WatchWindow it returns at the
// cut-over instead: the successor serves, this generation drains but keeps
// the main PID until the window has passed (UpgradeWatched waits for
// that). On failure the successor is killed and reaped,
// the manager is told READY=1 with STATUS= giving the reason, this
// generation keeps serving, and the error is an *UpgradeError. While
// another upgrade runs it returns an error wrapping ErrInProgress.
func (u *Upgrader) Upgrade(ctx context.Context) (int, error) {
	pid, _, err := u.upgradeWatch(ctx)
	return pid, err
}

// upgradeWatch is Upgrade, with the watch window it started (nil for
// none).
func (u *Upgrader) upgradeWatch(ctx context.Context) (int, *window, error) {
	u.mu.Lock()
	if err := u.upgradeRefusedLocked(); err != nil {
		u.mu.Unlock()
		return 0, nil, err
	}
	if err := u.enterLocked(phaseUpgrading); err != nil {
		u.mu.Unlock()
		return 0, nil, err
	}
	done := make(chan struct{})
	u.upgradeDone = done
	u.takeHistoryLocked()
	u.upgradeStart = time.Now()
	u.stage(stageUpgrade)
	mgr := u.mgr
	u.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(u.ctx, cancel)
	pid, win, err := u.upgrade(ctx, mgr)
	stop()
	cancel()

	u.mu.Lock()
	defer u.mu.Unlock()
	u.upgradeDone = nil
	close(done)
	stopping := u.phase == phaseStopping
	if err != nil {
		var ue *UpgradeError
		if stopping && !errors.Is(err, ErrStopping) && errors.As(err, &ue) {
			// The stop raced the failure (under systemd the successor
			// gets the stop's SIGTERM too): the stop is the outcome.
			ue.Err = fmt.Errorf("%w: %w", ErrStopping, ue.Err)
		}
		u.recordFailure(err)
		if !stopping {
			if terr := u.enterLocked(phaseServing); terr != nil { // resumes accepting
				err = errors.Join(err, terr)
			}
			if nerr := mgr.Send("READY=1\nSTATUS=" + oneLine("upgrade failed: "+err.Error())); nerr != nil {
				u.log.Warn("sd_notify", "err", nerr)
			}
		}
		return 0, nil, err
	}
	u.successor = pid
	if win != nil {
		u.window, u.watchUntil = win, win.until
		u.wg.Go(func() { u.watchWindow(win, mgr) })
		return pid, win, nil
	}
	if err := u.enterLocked(phaseHandedOver); err != nil { // starts the drain
		return 0, nil, err
	}
	return pid, nil, nil
}

// upgradeRefusedLocked is why an upgrade cannot start now, nil when it
// can; called with u.mu held.
func (u *Upgrader) upgradeRefusedLocked() error {
	switch u.phase {
	case phaseHandedOver:
		return fmt.Errorf("%w to pid %d", ErrHandedOver, u.successor)
	case phaseStopping, phaseStopped:
		return ErrStopping
	case phaseStarting, phaseAwaitingMain:
		return ErrNotReady
	case phaseUpgrading:
		return fmt.Errorf("generation %d starting: %w", u.gen+1, ErrInProgress)
	case phaseWatching:
		return fmt.Errorf("generation %d in its watch window until %s: %w", u.gen+1, u.watchUntil.Format(time.RFC3339), ErrInProgress)
	case phaseProbation:
		return fmt.Errorf("in the watch window of generation %d (pid %d), which holds the main PID: %w", u.gen-1, u.parentPID, ErrInProgress)
	}
	return nil
}

// upgrade runs one upgrade attempt; see Upgrade. With a watch window it
// returns at the cut-over with the window, which the caller starts.
func (u *Upgrader) upgrade(ctx context.Context, mgr notifier) (int, *window, error) {
	gen := u.gen + 1
	fail := func(stage string, pid int, err error) error {
		return &UpgradeError{Generation: gen, PID: pid, Stage: stage, Err: err}
	}
	start := time.Now()
	note := u.capDraining()
	if err := mgr.Reloading(); err != nil {
		u.log.Warn("sd_notify", "err", err)
	}
	if note != "" {
		if err := mgr.Status(oneLine(fmt.Sprintf("upgrading to generation %d; %s", gen, note))); err != nil {
			u.log.Warn("sd_notify", "err", err)
		}
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, nil, fail("start", 0, fmt.Errorf("socketpair: %w", err))
	}
	theirs := os.NewFile(uintptr(pair[1]), "handoff-successor")
	defer theirs.Close()
	mine := os.NewFile(uintptr(pair[0]), "handoff")
	fc, err := net.FileConn(mine)
	_ = mine.Close()
	if err != nil {
		return 0, nil, fail("start", 0, fmt.Errorf("hand-over channel: %w", err))
	}
	conn := fc.(*net.UnixConn)
	kept := false // the watch window keeps conn and w
	defer func() {
		if !kept {
			_ = conn.Close()
		}
	}()

	files, names := u.fds.all()
	sc := &spawn.Config{
		Path: u.exe, Args: u.args, Dir: u.dir,
		Files: files, Names: names,
		Extra: []*os.File{theirs}, Anchor: theirs,
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		Mode: spawn.SelfFix,
	}
	sc.Env = u.successorEnv(gen, sc.FD(0), note)
	p, err := spawn.Start(sc)
	if err != nil {
		return 0, nil, fail("start", 0, err)
	}
	_ = theirs.Close()
	pid := p.Pid
	u.stage(stageStarted)
	u.log.Info("successor started", "generation", gen, "pid", pid, "exe", u.exe)
	w := newWatched(p)
	defer func() {
		if !kept {
			w.close()
		}
	}()

	// Readiness.
	_ = conn.SetReadDeadline(time.Now().Add(u.cfg.readyTimeout()))
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	var buf [64]byte
	n, err := conn.Read(buf[:])
	stop()
	kind, arg := successorMessage(buf[:n])
	switch {
	case err == nil && kind == msgReady:
	case ctx.Err() != nil:
		abort(conn, "cancelled")
		return 0, nil, fail("ready", pid, fmt.Errorf("%w (successor killed: %s)", u.cancelCause(ctx), w.kill()))
	case errors.Is(err, os.ErrDeadlineExceeded):
		abort(conn, "timeout")
		return 0, nil, fail("ready", pid, fmt.Errorf("%w (%s; killed: %s)", ErrReadyTimeout, u.cfg.readyTimeout(), w.kill()))
	case err != nil:
		if w.wait(exitGrace) {
			return 0, nil, fail("ready", pid, u.exitedErr("before ready", w))
		}
		return 0, nil, fail("ready", pid, fmt.Errorf("%w: closed the hand-over channel before ready (killed: %s)", ErrSuccessorExited, w.kill()))
	case kind == msgVersion:
		w.wait(exitGrace)
		return 0, nil, fail("ready", pid, fmt.Errorf("%w: this generation speaks version %d, the successor version %s (killed: %s)", ErrProtocolVersion, protoVersion, arg, w.kill()))
	default:
		abort(conn, "protocol")
		return 0, nil, fail("ready", pid, fmt.Errorf("unexpected message %q (killed: %s)", buf[:n], w.kill()))
	}
	u.stage(stageReady)
	readyAfter := time.Since(start)
	logReady := func() { u.log.Info("successor ready", "generation", gen, "pid", pid, "took", readyAfter) }

	// Hand-over.
	if u.beforeHandOver != nil {
		u.beforeHandOver(pid)
	}
	if w.exited() {
		return 0, nil, fail("handover", pid, u.exitedErr("after ready, before hand-over", w))
	}
	if ctx.Err() != nil {
		abort(conn, "cancelled")
		return 0, nil, fail("handover", pid, fmt.Errorf("%w (successor killed: %s)", u.cancelCause(ctx), w.kill()))
	}
	if arg == readyProbation {
		// Early accept: this generation pauses and the successor serves
		// at once; the main PID moves after (now, or when the watch
		// window has passed), and a successor that dies before is
		// rolled back.
		err := u.cutOver(conn, w, pid)
		logReady() // after the pause, off the hand-over's path
		if err != nil {
			return 0, nil, fail("handover", pid, err)
		}
		if u.cfg.WatchWindow > 0 {
			win := u.startWindow(conn, w, mgr, gen, pid)
			kept = true
			u.stage(stageMainSent)
			u.log.Info("cut over, watching", "generation", gen, "pid", pid, "took", time.Since(start), "until", win.until)
			return pid, win, nil
		}
	} else if logReady(); u.cfg.WatchWindow > 0 {
		u.log.Warn("successor cannot be watched (a release without watch windows): handing over at once", "generation", gen, "pid", pid)
	}
	if err := u.handOverMain(conn, w, mgr, pid, mgr.HandOver); err != nil {
		return 0, nil, fail("handover", pid, err)
	}
	u.log.Info("handed over", "generation", gen, "pid", pid, "took", time.Since(start))
	_ = p.Release()
	return pid, nil, nil
}

// handOverMain makes the successor pid the manager's main process:
// tell(pid) (MAINPID=pid, with READY=1 unless the manager has had it
// already), BARRIER=1, then MAIN on the channel. On failure the successor
// is killed and this generation is main again.
func (u *Upgrader) handOverMain(conn *net.UnixConn, w *watched, mgr notifier, pid int, tell func(pid int) error) error {
	u.stopWatchdog()
	if err := tell(pid); err != nil {
		u.startWatchdog(mgr)
		abort(conn, "manager")
		return fmt.Errorf("%w (successor killed: %s)", err, w.kill())
	}
	bctx, cancel := context.WithTimeout(context.Background(), DefaultBarrierTimeout)
	err := mgr.Barrier(bctx)
	cancel()
	if err != nil {
		// MAINPID is sent; the manager most likely has it. Going on is
		// the lesser evil: taking it back is not possible.
		u.log.Warn("sd_notify barrier after MAINPID", "err", err)
	}
	u.stage(stageHandedOver)
	if u.beforeMain != nil {
		u.beforeMain(pid)
	}
	if _, err := conn.Write([]byte(msgMain)); err != nil {
		// The successor died after the manager was told it is main. Keep
		// serving and try to take the main PID back (accepted with
		// NotifyAccess=all; see the package notes).
		_ = mgr.HandOver(os.Getpid())
		u.startWatchdog(mgr)
		return fmt.Errorf("%w during hand-over: %s", ErrSuccessorExited, w.reap(exitGrace))
	}
	u.stage(stageMainSent)
	return nil
}

// cancelCause says why ctx ended: ErrStopping when this generation is
// stopping, the context's own error otherwise.
func (u *Upgrader) cancelCause(ctx context.Context) error {
	if u.ctx.Err() != nil {
		return ErrStopping
	}
	return ctx.Err()
}

// exitedErr is the error for a successor that exited by itself (w has
// exited). A stop of the service signals every process of its cgroup,
// this one first: a successor that ended as a stopped process does
// (killed by SIGTERM or SIGINT, or exit status 0, what a handoff
// successor stopped before READY returns) may have lost the race with
// this generation's own stop, which is then the outcome: ErrStopping.
func (u *Upgrader) exitedErr(when string, w *watched) error {
	st, how := w.reapState(0)
	if stoppedLike(st) && generation.AwaitStop(u.ctx.Done()) {
		return fmt.Errorf("%w (successor exited %s: %s)", ErrStopping, when, how)
	}
	return fmt.Errorf("%w %s: %s", ErrSuccessorExited, when, how)
}

// stoppedLike reports whether st is how a process ends when it is
// stopped (generation.StoppedLike).
func stoppedLike(st *os.ProcessState) bool {
	if st == nil {
		return false
	}
	ws, ok := st.Sys().(syscall.WaitStatus)
	if !ok {
		return false
	}
	return generation.StoppedLike(ws)
}

func abort(c *net.UnixConn, why string) {
	_, _ = c.Write([]byte(msgAbort + " " + why))
}

package handoff

// The successor's side of the hand-over: the generation started by an
// upgrade, which picks up its channel (New), says READY (Ready), serves
// from SERVE on (probation) and becomes main at MAIN, or claims the main
// PID when its predecessor dies first. The predecessor's side is
// predecessor_linux.go.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/internal/control"
)

// fromPredecessor picks up the hand-over channel of a successor.
func (u *Upgrader) fromPredecessor() error {
	v, ok := os.LookupEnv(envFD)
	gen := os.Getenv(envGen)
	notify := os.Getenv(envNotify)
	bound := os.Getenv(envBound)
	hist := os.Getenv(envHistory)
	proto, hasProto := os.LookupEnv(envProto)
	draining, hasDraining := os.LookupEnv(envDraining)
	note := os.Getenv(envStatus)
	watch, watched := os.LookupEnv(envWatch)
	for _, k := range []string{envFD, envGen, envNotify, envBound, envProto, envDraining, envStatus, envHistory, envWatch} {
		_ = os.Unsetenv(k)
	}
	if !ok {
		return nil
	}
	theirs := 1 // a predecessor from before versions
	if hasProto {
		v, err := strconv.Atoi(proto)
		if err != nil || v < 1 {
			return fmt.Errorf("%s=%q: %w", envProto, proto, ErrBadEnvironment)
		}
		theirs = v
	}
	positions, err := parseBound(bound)
	if err != nil {
		return err
	}
	if err := u.fds.markBound(positions); err != nil {
		return fmt.Errorf("%w: %w", err, ErrBadEnvironment)
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return fmt.Errorf("%s=%q: %w", envFD, v, ErrBadEnvironment)
	}
	n, err := strconv.Atoi(gen)
	if err != nil || n < 2 {
		return fmt.Errorf("%s=%q: %w", envGen, gen, ErrBadEnvironment)
	}
	if t, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || t != unix.SOCK_SEQPACKET {
		return fmt.Errorf("%s=%q: not a hand-over channel: %w", envFD, v, ErrBadEnvironment)
	}
	unix.CloseOnExec(fd)
	if theirs != protoVersion {
		// Tell the predecessor why, so that its upgrade fails with both
		// versions named, and give up: it goes on serving.
		_, _ = unix.Write(fd, []byte(msgVersion+" "+strconv.Itoa(protoVersion)))
		_ = unix.Close(fd)
		return fmt.Errorf("%w: the predecessor speaks version %d, this program version %d", ErrProtocolVersion, theirs, protoVersion)
	}
	cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return fmt.Errorf("hand-over channel: %w", err)
	}
	f := os.NewFile(uintptr(fd), "handoff")
	c, err := net.FileConn(f)
	_ = f.Close()
	if err != nil {
		return fmt.Errorf("hand-over channel: %w", err)
	}
	if hasDraining {
		list, err := parseDraining(draining, n, int(cred.Pid))
		if err != nil {
			_ = c.Close()
			return fmt.Errorf("%s=%q: %w: %w", envDraining, draining, ErrBadEnvironment, err)
		}
		u.draining = list
	}
	if strings.ContainsFunc(note, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		_ = c.Close()
		return fmt.Errorf("%s=%q: control character: %w", envStatus, note, ErrBadEnvironment)
	}
	u.parent, u.parentPID, u.gen, u.socket, u.statusNote = c.(*net.UnixConn), int(cred.Pid), n, notify, note
	u.watched = watched
	if d, err := time.ParseDuration(watch); err == nil && d > 0 {
		u.watchFor = d // "1" from a release that did not say how long
	}
	u.readHistory(hist)
	return nil
}

// Ready declares this generation ready to serve. In generation 1 it tells
// the manager READY=1. In a successor it tells the predecessor and waits
// until the predecessor has handed the main PID over (MAINPID, READY=1,
// BARRIER); only then does this process talk to the manager. If the
// predecessor dies first, this process claims the main PID itself
// (MAINPID=<self>, READY=1). It returns ErrAborted when the predecessor
// gave up on this process, which should then exit. It returns an error,
// and declares nothing, when this process's control socket cannot be
// opened (its name taken by another process: `baton reload` would not
// reach this one; Config.NoControl goes without).
//
// A generation stopped before (SIGTERM, Stop) gets nil at once and Wait
// returns at once: a successor that had not said READY declined the
// hand-over; one that had waits for the answer and, given the main PID,
// tells the manager STOPPING=1.
//
// Register the servers (Serve) before calling Ready: Ready starts them
// when this process becomes main, before it tells the manager. Meanwhile
// connections wait in the sockets' backlog. In a successor, the servers
// that accept on listeners from Listen start just before READY, on those
// listeners paused, and accept from the moment the predecessor has paused.
func (u *Upgrader) Ready() error {
	u.trapsAtReady()
	u.mu.Lock()
	if u.phase != phaseStarting {
		// Stopped before it was ready: nothing to declare (a successor
		// has declined the hand-over in Stop); Wait returns at once.
		u.mu.Unlock()
		return nil
	}
	u.mu.Unlock()
	// Sockets a generation opened and this one did not take (it no
	// longer uses them, or moved them to another address) are not passed
	// on; the predecessor's copies close when it exits.
	if dropped := u.fds.dropUnused(); len(dropped) > 0 {
		for _, name := range dropped {
			u.log.Info("not passing on an unused socket", "name", name, "generation", u.gen)
		}
		// Kept for a Listen after Ready while the predecessor, which
		// holds them too, drains; closed after its drain's deadline.
		t := time.AfterFunc(u.cfg.drainTimeout()+exitGrace, u.fds.closeDropped)
		u.mu.Lock()
		u.stopDropTimer = func() { t.Stop() }
		u.mu.Unlock()
	}
	// The control socket listens before anyone learns this pid (the
	// predecessor answers `baton reload` with it); requests wait until
	// this process is main.
	if !u.cfg.NoControl {
		// A name already taken (another process bound it first) is an
		// error: `baton reload` would not reach this process. A
		// successor that returns it never becomes main.
		c, err := control.ListenStatus(u.controlRequest, u.controlStatus)
		if err != nil {
			return fmt.Errorf("handoff: %w (Config.NoControl disables it)", err)
		}
		u.mu.Lock()
		u.control = c
		u.mu.Unlock()
	}
	claim := false
	if u.parent != nil {
		err := u.awaitMain()
		if errors.Is(err, errServe) {
			// The predecessor has paused: serve now, become main when
			// it says so: at once, or when its watch window has passed
			// (Ready returns then at the cut-over).
			return u.startProbation()
		}
		_ = u.parent.Close()
		switch {
		case errors.Is(err, errDeclined):
			return nil
		case errors.Is(err, errParentGone):
			u.log.Warn("predecessor gone before hand-over: claiming main", "predecessor", u.parentPID)
			claim = true
		case err != nil:
			u.Stop()
			return fmt.Errorf("handoff: %w", err)
		}
	}
	return u.becomeMain(claim)
}

// controlStatus serves `baton status`. A successor whose predecessor is
// handing over (it said READY) is waited for until it is main: `baton
// reload` returns its pid at that moment, and a status asked for right
// after shows it serving.
func (u *Upgrader) controlStatus(ctx context.Context) any {
	u.mu.Lock()
	handing := u.handingLocked()
	u.mu.Unlock()
	if handing {
		t := time.NewTimer(DefaultBarrierTimeout)
		defer t.Stop()
		select {
		case <-u.isMain:
		case <-u.done:
		case <-t.C:
		case <-ctx.Done():
		}
	}
	return u.Status()
}

// controlRequest serves `baton reload`: answered at the cut-over, or with
// --wait-window when the watch window has ended.
func (u *Upgrader) controlRequest(ctx context.Context) (int, error) {
	u.mu.Lock()
	ph := u.phase
	var refused error
	if ph == phaseHandedOver || ph == phaseProbation && !u.handingLocked() {
		refused = u.upgradeRefusedLocked()
	}
	u.mu.Unlock()
	if refused != nil {
		return 0, refused // a draining generation's control socket, or one on probation
	}
	select {
	case <-u.isMain:
	case <-u.done:
		return 0, ErrStopping
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	if control.RequestOf(ctx).WaitWindow {
		return u.logRequested(u.UpgradeWatched(ctx))
	}
	return u.logRequested(u.Upgrade(ctx))
}

var errParentGone = errors.New("predecessor gone")

// handingLocked reports whether this generation's predecessor is handing
// the main PID to it now: it said READY and waits for the answer, or it
// serves and waits for MAIN, which comes at once without a watch window
// and when the window has passed with one. Called with u.mu held.
func (u *Upgrader) handingLocked() bool {
	if u.phase == phaseAwaitingMain {
		return true
	}
	// On probation, the main PID comes at once without a window, and at
	// the window's end with one (a reload that comes then waits for it
	// rather than being refused as in the window). The predecessor's
	// clock started when it wrote SERVE, this one's after its servers
	// started: the end seen from here is late by that much, so a reload
	// within windowEndSlack of it waits too (for MAIN, or for the
	// predecessor's rollback, which stops this generation).
	if u.phase != phaseProbation {
		return false
	}
	if !u.watched {
		return true
	}
	if u.watchFor <= 0 {
		return false
	}
	slack := min(windowEndSlack, u.watchFor/2)
	return !time.Now().Before(u.becameMain.Add(u.watchFor - slack))
}

// windowEndSlack is how long before the end of its predecessor's watch
// window, as seen from a successor, a reload waits for the main PID
// instead of being refused.
const windowEndSlack = 250 * time.Millisecond

func (u *Upgrader) awaitMain() error {
	// Once READY is out the predecessor decides: from then on a stop
	// request waits for its answer (see Stop).
	u.mu.Lock()
	if u.phase != phaseStarting {
		u.mu.Unlock()
		return errDeclined
	}
	if err := u.enterLocked(phaseAwaitingMain); err != nil {
		u.mu.Unlock()
		return err
	}
	u.holdLocked()
	u.mu.Unlock()
	// This release accepts from READY on, its servers started on its
	// held listeners (holdLocked), and serves on probation from SERVE,
	// before the main PID moves: it says so. The predecessor pauses when
	// it reads READY; until then both accept, both ready.
	if _, err := u.parent.Write([]byte(msgReady + " " + readyProbation)); err != nil {
		return u.channelClosed()
	}
	u.stage(stageReadySent)
	if u.afterReadySent != nil { // tests: what happens at READY
		u.afterReadySent()
	}
	u.mu.Lock()
	if u.phase == phaseAwaitingMain { // not stopped meanwhile
		u.releaseLocked()
	}
	u.mu.Unlock()
	<-u.notified // the signals are caught from here on (New)
	err := u.readAnswer()
	u.stage(stageMain) // MAIN, or SERVE in a watch window
	return err
}

// readAnswer reads the predecessor's next word on the hand-over channel:
// nil for MAIN, errServe for SERVE, ErrAborted for ABORT, or why the
// channel ended.
func (u *Upgrader) readAnswer() error {
	var buf [64]byte
	n, err := u.parent.Read(buf[:])
	switch m := string(buf[:n]); {
	case err != nil:
		return u.channelClosed()
	case m == msgMain:
		return nil
	case m == msgServe:
		return errServe
	case strings.HasPrefix(m, msgAbort):
		return ErrAborted
	default:
		return fmt.Errorf("hand-over channel: unexpected %q: %w", m, ErrAborted)
	}
}

var (
	// errDeclined: this successor was stopped before the hand-over.
	errDeclined = errors.New("hand-over declined")
	// errServe: the predecessor said SERVE (a watch window).
	errServe = errors.New("serve on probation")
)

// channelClosed tells why the hand-over channel ended without a message.
// The predecessor always says ABORT before it gives up: a silent end of
// the channel means it died. A successor asked to stop does not claim.
func (u *Upgrader) channelClosed() error {
	u.mu.Lock()
	stopped := u.phase == phaseStopped
	u.mu.Unlock()
	if stopped {
		return errDeclined
	}
	return errParentGone
}

func (u *Upgrader) becomeMain(claim bool) error {
	if u.parent != nil && u.socket != "" {
		_ = os.Setenv("NOTIFY_SOCKET", u.socket)
	}
	mgr, err := dialNotifier(u.socket)
	if err != nil {
		return fmt.Errorf("handoff: %w", err)
	}
	self := os.Getpid()
	u.mu.Lock()
	defer u.mu.Unlock()
	u.mgr = mgr
	if u.phase == phaseStopped {
		// Asked to stop while the predecessor handed the main PID over:
		// main for as long as it takes to say it stops. Nothing is
		// started; Wait returns at once.
		if !claim {
			if err := mgr.Stopping(); err != nil {
				u.log.Warn("sd_notify", "err", err)
			}
		}
		return nil
	}
	onProbation := u.phase == phaseProbation
	if err := u.enterLocked(phaseServing); err != nil { // starts the servers
		return err
	}
	if !onProbation {
		u.becameMain = time.Now()
	}
	if u.parent != nil {
		u.recordHandOver(self)
		u.watchDrain(u.parentPID)
	}
	// Everything is in place before the manager hears of it: the control
	// socket answers as soon as READY=1 is out.
	if u.parent != nil && os.Getenv("WATCHDOG_USEC") != "" {
		// The predecessor left WATCHDOG_PID out: the watchdog is ours,
		// and a program this process starts must not ping for it.
		_ = os.Setenv("WATCHDOG_PID", strconv.Itoa(self))
	}
	u.storeFDsLocked()
	u.startWatchdog(mgr)
	close(u.isMain)
	u.stage(stageServing) // on probation: when it began (the first time counts)
	// Once serving: replacing a file can take a millisecond (ext4
	// flushes it on rename).
	u.writePIDFile()
	status := "STATUS=" + u.servingStatus(self)
	if u.statusNote != "" {
		status += "; " + u.statusNote
	}
	switch {
	case claim:
		err = mgr.Send("MAINPID=" + strconv.Itoa(self) + "\nREADY=1\n" + status)
	case u.parent == nil:
		err = mgr.Send("READY=1\n" + status)
	default:
		err = mgr.Send(status)
	}
	if err != nil {
		u.log.Warn("sd_notify", "err", err)
	}
	if u.statusNote != "" {
		u.log.Info("serving", "generation", u.gen, "pid", self, "upgrade", u.statusNote)
	} else {
		u.log.Info("serving", "generation", u.gen, "pid", self)
	}
	return nil
}

// storeFDs is storeFDsLocked for callers without u.mu.
func (u *Upgrader) storeFDs() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.storeFDsLocked()
}

// storeFDsLocked puts the sockets and files this process opened itself
// into the manager's fd store (Config.NoFDStore). Only the main process
// may, and only until it hands over; a successor's inherited fds are in the
// store already, through the generation that opened them. Called with u.mu
// held.
func (u *Upgrader) storeFDsLocked() {
	if u.cfg.NoFDStore || !u.phase.main() || u.phase == phaseWatching || u.mgr == nil {
		return
	}
	for _, e := range u.fds.unstored() {
		if e.replaces {
			// The store holds the socket this one replaced (it moved):
			// a restart must not bring it back.
			if err := u.mgr.FDStoreRemove(e.name); err != nil {
				u.log.Warn("fd store", "name", e.name, "err", err)
			}
		}
		if err := u.mgr.FDStore(e.name, e.file); err != nil {
			u.log.Warn("fd store", "name", e.name, "err", err)
		}
	}
}

// startProbation is a successor's answer to SERVE: it starts its servers
// and waits for MAIN: in the background when the predecessor watches it
// for a window, otherwise before it returns, so that Ready returns once
// this generation is main.
func (u *Upgrader) startProbation() error {
	u.mu.Lock()
	if u.phase != phaseAwaitingMain {
		u.mu.Unlock()
		if !u.watched {
			// Stopped meanwhile, and MAIN comes at once: awaited, to
			// say STOPPING=1 as main (becomeMain), as after READY.
			return u.probation()
		}
		// Stopped meanwhile: the predecessor rolls back.
		_, _ = u.parent.Write([]byte(msgStopping))
		_ = u.parent.Close()
		return nil
	}
	if err := u.enterLocked(phaseProbation); err != nil { // starts the servers
		u.mu.Unlock()
		_, _ = u.parent.Write([]byte(msgStopping))
		_ = u.parent.Close()
		return err
	}
	u.becameMain = time.Now() // serving since: the upgrade's duration ends here
	u.stage(stageServing)
	u.mu.Unlock()
	if !u.watched {
		return u.probation()
	}
	u.log.Info("serving on probation", "generation", u.gen, "pid", os.Getpid(), "predecessor", u.parentPID)
	u.wg.Go(func() {
		if err := u.probation(); err != nil {
			u.log.Error("becoming main after probation", "err", err)
		}
	})
	return nil
}

// probation waits for the predecessor's word: MAIN (the window passed),
// ABORT (it stops: so does this one), or the end of the channel (it died:
// this one claims the main PID).
func (u *Upgrader) probation() error {
	err := u.readAnswer()
	_ = u.parent.Close()
	switch {
	case err == nil:
		return u.becomeMain(false)
	case errors.Is(err, errParentGone):
		u.log.Warn("predecessor gone before the main PID moved: claiming main", "predecessor", u.parentPID)
		return u.becomeMain(true)
	case errors.Is(err, errDeclined):
		return nil
	default:
		u.log.Info("predecessor ended the cut-over: stopping", "generation", u.gen, "why", err)
		u.Stop()
		return nil
	}
}

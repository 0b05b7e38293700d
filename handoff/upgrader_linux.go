package handoff

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/internal/control"
	_ "github.com/batonhq/baton/internal/spawn" // sets LISTEN_PID in a successor before main
)

// Environment between a generation and its successor. New reads and unsets
// them.
const (
	envFD     = "BATON_HANDOFF_FD"     // fd of the hand-over channel (a SOCK_SEQPACKET socketpair)
	envGen    = "BATON_HANDOFF_GEN"    // the successor's generation number
	envExe    = "BATON_HANDOFF_EXE"    // the executable path of generation 1
	envNotify = "BATON_HANDOFF_NOTIFY" // the manager's NOTIFY_SOCKET, held back until main
)

// Messages on the hand-over channel.
const (
	msgReady = "READY" // successor -> predecessor: serving, ready to take over
	msgMain  = "MAIN"  // predecessor -> successor: the manager knows you as main
	msgAbort = "ABORT" // predecessor -> successor: upgrade abandoned, exit
)

// The executable and working directory of generation 1, taken before main
// runs and passed on, so that a binary replaced by rename is found by path.
var startExe, startDir = startPaths()

func startPaths() (exe, dir string) {
	exe = os.Getenv(envExe)
	_ = os.Unsetenv(envExe)
	if exe == "" {
		exe, _ = os.Executable()
		exe = strings.TrimSuffix(exe, " (deleted)")
	}
	dir, _ = os.Getwd()
	return exe, dir
}

// New takes this process's sockets from the environment (LISTEN_FDS from
// the manager or the predecessor) and, unless Config says otherwise,
// handles SIGHUP (upgrade), SIGTERM and SIGINT (stop). Call it once, early
// in main.
func New(cfg Config) (*Upgrader, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fds, err := receive()
	if err != nil {
		return nil, fmt.Errorf("handoff: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	u := &Upgrader{
		cfg: cfg, log: log, gen: 1, exe: startExe, dir: startDir, args: os.Args, fds: fds,
		socket: os.Getenv("NOTIFY_SOCKET"), ctx: ctx, cancel: cancel,
		done: make(chan struct{}), isMain: make(chan struct{}), serveErr: make(chan error, 1),
	}
	if err := u.fromPredecessor(); err != nil {
		cancel()
		fds.close()
		return nil, fmt.Errorf("handoff: %w", err)
	}
	if !cfg.NoSignals {
		sigs := make(chan os.Signal, 4)
		signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
		quit := make(chan struct{})
		u.wg.Go(func() { u.signals(sigs, quit) })
		u.stopSignals = func() { signal.Stop(sigs); close(quit) }
	}
	return u, nil
}

// fromPredecessor picks up the hand-over channel of a successor.
func (u *Upgrader) fromPredecessor() error {
	v, ok := os.LookupEnv(envFD)
	gen := os.Getenv(envGen)
	notify := os.Getenv(envNotify)
	for _, k := range []string{envFD, envGen, envNotify} {
		_ = os.Unsetenv(k)
	}
	if !ok {
		return nil
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
	u.parent, u.parentPID, u.gen, u.socket = c.(*net.UnixConn), int(cred.Pid), n, notify
	return nil
}

func (u *Upgrader) signals(sigs chan os.Signal, quit chan struct{}) {
	for {
		select {
		case <-quit:
			return
		case s := <-sigs:
			if s != syscall.SIGHUP {
				u.log.Info("stopping", "signal", s.String(), "generation", u.gen)
				u.wg.Go(u.Stop)
				continue
			}
			u.wg.Go(func() {
				pid, err := u.Upgrade(u.ctx)
				if err != nil {
					u.log.Error("upgrade", "err", err)
					return
				}
				u.log.Info("upgraded", "pid", pid)
			})
		}
	}
}

// Ready declares this generation ready to serve. In generation 1 it tells
// the manager READY=1. In a successor it tells the predecessor and waits
// until the predecessor has handed the main PID over (MAINPID, READY=1,
// BARRIER); only then does this process talk to the manager. If the
// predecessor dies first, this process claims the main PID itself
// (MAINPID=<self>, READY=1). It returns ErrAborted when the predecessor
// gave up on this process, which should then exit.
//
// Start serving (Serve) before calling Ready: connections that arrive in
// between wait in the socket's backlog.
func (u *Upgrader) Ready() error {
	u.mu.Lock()
	if u.ready {
		u.mu.Unlock()
		return nil
	}
	u.mu.Unlock()
	// The control socket listens before anyone learns this pid (the
	// predecessor answers `baton reload` with it); requests wait until
	// this process is main.
	if !u.cfg.NoControl {
		c, err := control.Listen(u.controlRequest)
		if err != nil {
			u.log.Warn("control socket", "err", err)
		} else {
			u.mu.Lock()
			u.control = c
			u.mu.Unlock()
		}
	}
	claim := false
	if u.parent != nil {
		err := u.awaitMain()
		_ = u.parent.Close()
		switch {
		case errors.Is(err, errParentGone):
			u.log.Warn("predecessor gone before hand-over: claiming main", "predecessor", u.parentPID)
			claim = true
		case err != nil:
			u.Stop()
			return err
		}
	}
	return u.becomeMain(claim)
}

// controlRequest serves `baton reload`.
func (u *Upgrader) controlRequest(ctx context.Context) (int, error) {
	select {
	case <-u.isMain:
	case <-u.done:
		return 0, ErrStopping
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return u.Upgrade(ctx)
}

var errParentGone = errors.New("predecessor gone")

func (u *Upgrader) awaitMain() error {
	if _, err := u.parent.Write([]byte(msgReady)); err != nil {
		return errParentGone
	}
	if u.afterReadySent != nil {
		u.afterReadySent()
	}
	var buf [64]byte
	n, err := u.parent.Read(buf[:])
	switch {
	case err == nil && string(buf[:n]) == msgMain:
		return nil
	case err == nil && strings.HasPrefix(string(buf[:n]), msgAbort):
		return ErrAborted
	case err == nil:
		return fmt.Errorf("hand-over channel: unexpected %q: %w", buf[:n], ErrAborted)
	}
	// The predecessor always says ABORT before it gives up: a silent end
	// of the channel means it died.
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
	u.mgr, u.ready, u.main = mgr, true, true
	// Everything is in place before the manager hears of it: the control
	// socket answers as soon as READY=1 is out.
	u.writePIDFile()
	u.startWatchdog()
	close(u.isMain)
	status := fmt.Sprintf("STATUS=serving, generation %d, pid %d", u.gen, self)
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
	u.log.Info("serving", "generation", u.gen, "pid", self)
	return nil
}

// startWatchdog pings the manager at half of WATCHDOG_USEC when the
// watchdog is this process's (WATCHDOG_PID unset or ours; a successor makes
// it its own).
func (u *Upgrader) startWatchdog() {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return
	}
	self := strconv.Itoa(os.Getpid())
	if u.parent != nil {
		_ = os.Setenv("WATCHDOG_PID", self)
	}
	if p := os.Getenv("WATCHDOG_PID"); p != "" && p != self {
		return
	}
	mgr := u.mgr
	t := time.NewTicker(time.Duration(usec) * time.Microsecond / 2)
	quit := make(chan struct{})
	u.wg.Go(func() {
		defer t.Stop()
		for {
			_ = mgr.Watchdog()
			select {
			case <-quit:
				return
			case <-t.C:
			}
		}
	})
	u.stopWatch = func() { close(quit) }
}

// Upgrade starts the executable on disk as the successor generation with
// this generation's sockets and waits until it is ready, then hands it the
// main PID and returns its pid; Done is closed and the caller's Wait
// drains this generation. On failure the successor is killed and reaped,
// the manager is told READY=1 with STATUS= giving the reason, this
// generation keeps serving, and the error is an *UpgradeError. While
// another upgrade runs it returns an error wrapping ErrInProgress.
func (u *Upgrader) Upgrade(ctx context.Context) (int, error) {
	u.mu.Lock()
	switch {
	case u.handedOver:
		pid := u.successor
		u.mu.Unlock()
		return 0, fmt.Errorf("%w to pid %d", ErrHandedOver, pid)
	case u.stopping:
		u.mu.Unlock()
		return 0, ErrStopping
	case !u.ready:
		u.mu.Unlock()
		return 0, ErrNotReady
	case u.upgradeDone != nil:
		u.mu.Unlock()
		return 0, fmt.Errorf("generation %d starting: %w", u.gen+1, ErrInProgress)
	}
	done := make(chan struct{})
	u.upgradeDone = done
	mgr := u.mgr
	u.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(u.ctx, cancel)
	pid, err := u.upgrade(ctx, mgr)
	stop()
	cancel()

	u.mu.Lock()
	defer u.mu.Unlock()
	u.upgradeDone = nil
	close(done)
	if err != nil {
		if !u.stopping {
			if nerr := mgr.Send("READY=1\nSTATUS=" + oneLine("upgrade failed: "+err.Error())); nerr != nil {
				u.log.Warn("sd_notify", "err", nerr)
			}
		}
		return 0, err
	}
	u.handedOver, u.successor = true, pid
	u.endLocked()
	return pid, nil
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

func (u *Upgrader) successorEnv(gen, fd int) []string {
	env := make([]string, 0, 64)
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "NOTIFY_SOCKET" || k == "WATCHDOG_PID" || strings.HasPrefix(k, "BATON_HANDOFF_") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		envFD+"="+strconv.Itoa(fd),
		envGen+"="+strconv.Itoa(gen),
		envExe+"="+u.exe,
	)
	if u.socket != "" {
		env = append(env, envNotify+"="+u.socket)
	}
	return env
}

// Close stops signal handling too; see Close in handoff.go.
func (u *Upgrader) closeOS() {
	if u.stopSignals != nil {
		u.stopSignals()
		u.stopSignals = nil
	}
}

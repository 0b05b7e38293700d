package handoff

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The executable and working directory of generation 1, taken before main
// runs and passed on, so that a binary replaced by rename is found by path.
var startExe, startDir = startPaths()

func startPaths() (exe, dir string) {
	dir, _ = os.Getwd()
	exe = os.Getenv(envExe)
	_ = os.Unsetenv(envExe)
	if exe == "" {
		exe = invokedPath(dir)
	}
	return exe, dir
}

// invokedPath returns the path this program was started by when it names
// the running executable: a symbolic link switched to a new release (or a
// file replaced by rename) then takes effect at the next upgrade. Otherwise
// it is os.Executable, the file itself.
func invokedPath(dir string) string {
	self, _ := os.Executable()
	self = strings.TrimSuffix(self, " (deleted)")
	if len(os.Args) == 0 || os.Args[0] == "" {
		return self
	}
	p := os.Args[0]
	switch {
	case filepath.IsAbs(p):
	case strings.ContainsRune(p, '/'):
		p = filepath.Join(dir, p)
	default:
		lp, err := exec.LookPath(p)
		if err != nil {
			return self
		}
		p, _ = filepath.Abs(lp)
	}
	a, err1 := os.Stat(p)
	b, err2 := os.Stat("/proc/self/exe")
	if err1 != nil || err2 != nil || !os.SameFile(a, b) {
		return self
	}
	return p
}

// New takes this process's sockets from the environment (LISTEN_FDS from
// the manager or the predecessor) and, unless Config says otherwise,
// handles SIGHUP (upgrade), SIGTERM and SIGINT (stop). Call it once, early
// in main.
func New(cfg Config) (*Upgrader, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
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
		done: make(chan struct{}), isMain: make(chan struct{}), serveErr: make(chan error, 1), spell: newSpell(),
		stopped: make(chan struct{}), cutDelay: make(chan struct{}),
	}
	u.selfStart, _ = procStart(os.Getpid())
	u.startedAt = time.Now()
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
		u.stopSignals = func() { // called by closeOS, with u.mu held
			if u.phase == phaseHandedOver {
				// Its work is done and the service's signals are its
				// successor's: one that reaches it now (a PID 1 init
				// forwards to every process) must not kill it by the
				// default action before it exits.
				signal.Ignore(syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
			} else {
				signal.Stop(sigs)
			}
			close(quit)
		}
	}
	return u, nil
}

func (u *Upgrader) signals(sigs chan os.Signal, quit chan struct{}) {
	for {
		select {
		case <-quit:
			return
		case s := <-sigs:
			if os.Getpid() == 1 && u.HandedOver() {
				// PID 1 staying as the namespace's init (init_linux.go):
				// from the hand-over on, signals are for the serving
				// generation, and the draining ones; not for this one.
				_ = unix.Kill(-1, s.(syscall.Signal))
				continue
			}
			if s != syscall.SIGHUP {
				u.log.Info("stopping", "signal", s.String(), "generation", u.gen)
				u.wg.Go(u.Stop)
				continue
			}
			u.stage(stageSignal)
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
	u.enterLocked(phaseUpgrading)
	done := make(chan struct{})
	u.upgradeDone = done
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
			u.enterLocked(phaseServing)
			if nerr := mgr.Send("READY=1\nSTATUS=" + oneLine("upgrade failed: "+err.Error())); nerr != nil {
				u.log.Warn("sd_notify", "err", nerr)
			}
		}
		return 0, nil, err
	}
	if win != nil && stopping {
		// The stop came as the successor started serving: it is told to
		// stop too, and this generation stops as main.
		u.abandonWindow(win)
		close(win.done)
		err = &UpgradeError{Generation: win.gen, PID: pid, Stage: "handover", Err: ErrStopping}
		u.recordFailure(err)
		return 0, nil, err
	}
	u.successor = pid
	u.drainSince = time.Now()
	if win != nil {
		u.enterLocked(phaseWatching)
		u.window, u.watchUntil = win, win.until
		u.endSpellLocked(win)
		u.wg.Go(func() { u.watchWindow(win, mgr) })
		return pid, win, nil
	}
	u.enterLocked(phaseHandedOver)
	u.endLocked()
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

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// startEnv is the environment this process started with, taken before
// main runs. Successors get it, not the environment as the program changed
// it since (a `PATH+=` at start-up would otherwise grow by one entry each
// generation), plus the hand-over's own variables.
var startEnv = os.Environ()

func (u *Upgrader) successorEnv(gen, fd int, note string) []string {
	env := make([]string, 0, len(startEnv)+4)
	for _, kv := range startEnv {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "NOTIFY_SOCKET" || k == "WATCHDOG_PID" || strings.HasPrefix(k, "BATON_HANDOFF_"):
			continue
		case k == "LISTEN_PID" || k == "LISTEN_PIDFDID" || k == "LISTEN_FDS" || k == "LISTEN_FDNAMES":
			// The manager's, read by New: the successor gets its own.
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		envFD+"="+strconv.Itoa(fd),
		envGen+"="+strconv.Itoa(gen),
		envExe+"="+u.exe,
		envBound+"="+u.fds.boundPositions(),
		envProto+"="+strconv.Itoa(protoVersion),
		envHistory+"="+u.historyEnv(),
	)
	if u.socket != "" {
		env = append(env, envNotify+"="+u.socket)
	}
	if u.selfStart != 0 {
		// Without a start time of its own (no /proc) this generation
		// cannot be told from a later process with its pid: nothing is
		// passed, and the successor caps nothing it cannot check.
		list := append(u.draining[:len(u.draining):len(u.draining)], procRef{gen: u.gen, pid: os.Getpid(), start: u.selfStart})
		env = append(env, envDraining+"="+formatDraining(list))
	}
	if note != "" {
		env = append(env, envStatus+"="+note)
	}
	if u.cfg.WatchWindow > 0 {
		env = append(env, envWatch+"=1")
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

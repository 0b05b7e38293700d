package handoff

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
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
// handles SIGHUP (upgrade), SIGTERM and SIGINT (stop): from its return in
// generation 1, from READY on at the latest in a successor (until then a
// signal may end it by its default action; it has accepted nothing). Call
// it once, early in main.
func New(cfg Config) (*Upgrader, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	// The first signal.Notify of a process starts a thread of the
	// runtime's and waits for it (a few hundred microseconds on a small
	// machine). In a successor it was started at package init
	// (earlySignals) and is waited for once READY is written (Ready),
	// so that it says READY, and accepts, that much sooner: a signal
	// that reaches it before the handler is in place has the default
	// action, which ends a process that has accepted nothing (the
	// predecessor, whose channel closes, goes on serving). In
	// generation 1 it runs beside the rest of New, which waits for it.
	var sigs chan os.Signal
	notified := make(chan struct{})
	e := earlySignals.Swap(nil)
	switch {
	case cfg.NoSignals:
		if e != nil {
			// Caught for nothing: let go, and what came meanwhile
			// comes again, to the program's own handling.
			<-e.done
			signal.Stop(e.c)
			for len(e.c) > 0 {
				_ = unix.Kill(os.Getpid(), (<-e.c).(syscall.Signal))
			}
		}
		close(notified)
	case e != nil:
		sigs, notified = e.c, e.done
	default:
		sigs = make(chan os.Signal, 4)
		go func() {
			signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
			close(notified)
		}()
	}
	fail := func(err error) (*Upgrader, error) {
		<-notified
		if sigs != nil {
			signal.Stop(sigs)
		}
		return nil, fmt.Errorf("handoff: %w", err)
	}
	fds, err := receive()
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	u := &Upgrader{
		cfg: cfg, log: log, gen: 1, exe: startExe, dir: startDir, args: os.Args, fds: fds,
		socket: os.Getenv("NOTIFY_SOCKET"), ctx: ctx, cancel: cancel,
		done: make(chan struct{}), isMain: make(chan struct{}), serveErr: make(chan error, 1), drained: make(chan struct{}),
		stopped: make(chan struct{}), cutDelay: make(chan struct{}),
	}
	u.selfStartRead = make(chan struct{})
	go func() { // read from /proc, needed at the first upgrade only
		u.selfStart, _ = procStart(os.Getpid())
		close(u.selfStartRead)
	}()
	u.startedAt = time.Now()
	if err := u.fromPredecessor(); err != nil {
		cancel()
		fds.close()
		return fail(err)
	}
	u.notified = notified
	if u.parent == nil {
		<-notified
	}
	if sigs != nil {
		quit := make(chan struct{})
		u.wg.Go(func() { u.signals(sigs, quit) })
		u.stopSignals = func() { // called by closeOS, with u.mu held
			<-notified // not to be undone by a Notify after
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
	u.trapsAtStart()
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

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// earlySignals, in a successor (started by a predecessor's upgrade with
// BATON_HANDOFF_FD: a program that calls New), catches the Upgrader's
// signals from package init on, in a goroutine, so that the first
// signal.Notify's runtime thread starts beside the rest of the start-up
// instead of before READY. New takes the channel. A successor stuck before
// New therefore does not die of SIGTERM: its predecessor kills it
// (SIGKILL) when Config.ReadyTimeout has passed.
var earlySignals atomic.Pointer[caught]

type caught struct {
	c    chan os.Signal
	done chan struct{} // closed once Notify has returned
}

func init() {
	if _, ok := os.LookupEnv(envFD); !ok {
		return
	}
	e := &caught{c: make(chan os.Signal, 4), done: make(chan struct{})}
	earlySignals.Store(e)
	go func() {
		signal.Notify(e.c, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
		close(e.done)
	}()
}

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
	<-u.selfStartRead
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
		env = append(env, envWatch+"="+u.cfg.WatchWindow.String())
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

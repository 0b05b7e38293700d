package handoff

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/batonhq/baton/notify"
)

// The serving path of systems other than Linux (New in upgrader_other.go):
// a generation that binds its sockets, serves, stops and drains as on
// Linux, but never hands over. It is portable so that the Linux tests run
// it too (plain_test.go).

// errNoUpgrade is what Upgrade returns, and SIGHUP logs, off Linux.
var errNoUpgrade = fmt.Errorf("handoff: upgrade on %s: %w (fork-exec upgrades with inherited sockets are implemented for Linux only; this generation keeps serving: stop and start it to run a new binary)",
	runtime.GOOS, ErrNotSupported)

// newPlain returns the Upgrader of a process that cannot hand over: always
// generation 1, with no manager, no control socket and no successor. It
// binds through fds, which must hold nothing inherited. Unless
// Config.NoSignals, SIGTERM and SIGINT stop it and SIGHUP logs
// errNoUpgrade.
func newPlain(cfg Config, fds *fdSet) (*Upgrader, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	exe, _ := os.Executable()
	dir, _ := os.Getwd()
	ctx, cancel := context.WithCancel(context.Background())
	u := &Upgrader{
		cfg: cfg, log: log, gen: 1, exe: exe, dir: dir, args: os.Args, fds: fds,
		ctx: ctx, cancel: cancel, startedAt: time.Now(),
		done: make(chan struct{}), isMain: make(chan struct{}), serveErr: make(chan error, 1), drained: make(chan struct{}),
		stopped: make(chan struct{}), cutDelay: make(chan struct{}),
	}
	if !cfg.NoSignals {
		sigs := make(chan os.Signal, 4)
		signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
		quit := make(chan struct{})
		u.wg.Go(func() { u.plainSignals(sigs, quit) })
		u.stopSignals = func() { signal.Stop(sigs); close(quit) }
	}
	return u, nil
}

func (u *Upgrader) plainSignals(sigs chan os.Signal, quit chan struct{}) {
	for {
		select {
		case <-quit:
			return
		case s := <-sigs:
			if s == syscall.SIGHUP {
				u.log.Warn("upgrade", "signal", s.String(), "err", errNoUpgrade)
				continue
			}
			u.log.Info("stopping", "signal", s.String(), "generation", u.gen)
			u.wg.Go(u.Stop)
		}
	}
}

// readyPlain is Ready without a manager or a predecessor: this generation
// is main at once, writes the PID file and starts its servers.
func (u *Upgrader) readyPlain() error {
	u.trapsAtReady()
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.phase != phaseStarting {
		return nil
	}
	u.mgr = (*notify.Client)(nil)                       // no manager: every message is a no-op
	if err := u.enterLocked(phaseServing); err != nil { // starts the servers
		return err
	}
	u.writePIDFile()
	close(u.isMain)
	u.log.Info("serving", "generation", u.gen, "pid", os.Getpid(), "upgrades", "not supported on "+runtime.GOOS)
	return nil
}

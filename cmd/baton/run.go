package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/batonhq/baton/internal/control"
	"github.com/batonhq/baton/internal/supervisor"
	"github.com/batonhq/baton/notify"
)

func (c *runCommand) Run(ctx context.Context, args []string) error {
	if err := c.flags.parse(args); err != nil {
		return err
	}
	argv := c.flags.Args()
	if len(argv) == 0 {
		return usagef("run", "no command: want baton run [FLAGS] -- CMD [ARG]...")
	}
	cfg, err := c.config(argv)
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if c.quiet {
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewTextHandler(c.io.Stderr, &slog.HandlerOptions{Level: level})).With("from", "baton")
	cfg.Logger = log

	// The manager's socket is baton's; CMD gets its own (the supervisor
	// replaces NOTIFY_SOCKET in CMD's environment).
	mgr, err := notify.FromEnv()
	if err != nil {
		log.Warn("not notifying the service manager", "err", err)
	}
	defer mgr.Close()
	if mgr.Enabled() {
		cfg.Manager = mgr.Send
	}

	socks, closeSocks, err := c.sockets()
	if err != nil {
		return err
	}
	defer closeSocks()
	for _, sk := range socks {
		log.Info("socket", "name", sk.Name, "addr", sockAddr(sk.File))
	}
	cfg.Sockets = socks
	if c.front {
		fr, stopFront, err := c.startFront(socks, log)
		if err != nil {
			return err
		}
		defer stopFront()
		cfg.Front = fr
	}

	if os.Getpid() != 1 {
		// Orphans of CMD's own children come to baton, not to init.
		if err := setSubreaper(); err != nil {
			log.Warn("child subreaper", "err", err)
		}
	}
	sup, err := supervisor.New(cfg)
	if err != nil {
		return err
	}

	// main cancels ctx on SIGINT and SIGTERM; baton run forwards them
	// instead, so it listens itself, and its Run gets a context of its own.
	// A pool resizes on SIGTTIN and SIGTTOU.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT)
	if c.workers > 1 {
		signal.Notify(sigs, growSignal, shrinkSignal)
	}
	defer signal.Stop(sigs)
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()

	// supervisor.ErrStopping, ErrInProgress and ErrRolledBack are
	// control's: an upgrade a stop abandoned is answered "stopping", one
	// rolled back in its watch window "rolled-back".
	started := time.Now()
	srv, err := control.ListenStatus(func(ctx context.Context) (int, error) {
		return sup.UpgradeWith(ctx, supervisor.UpgradeOptions{WaitWindow: control.RequestOf(ctx).WaitWindow})
	}, func(context.Context) any {
		return runStatus(sup, started, argv[0], socks, c.workers > 1, c.maxSurge)
	})
	if err != nil {
		// baton reload would not reach this process, or would reach the
		// process that took the name.
		return fmt.Errorf("baton run: %w", err)
	}
	// Answer the request a stop abandoned before exiting, so that
	// `baton reload` learns why.
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), controlGrace)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()

	done := make(chan error, 1)
	go func() { done <- sup.Run(runCtx) }()
	for {
		select {
		case err := <-done:
			return c.exit(err, socks, log)
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				sup.Trigger()
			case growSignal, shrinkSignal:
				c.resize(sup, sig, log)
			default:
				// The supervisor logs when it delays the signal (--stop-delay).
				log.Info("stop", "signal", sig.String(), "pid", sup.PID())
				if err := sup.Stop(sig); err != nil {
					cancel()
				}
			}
		}
	}
}

// resize adds a worker to the pool on SIGTTIN and removes one on SIGTTOU.
func (c *runCommand) resize(sup *supervisor.Supervisor, sig os.Signal, log *slog.Logger) {
	n := sup.Stats().Workers
	if sig == growSignal {
		n++
	} else {
		n--
	}
	if err := sup.Scale(n); err != nil {
		log.Warn("resize", "signal", sig.String(), "err", err)
	}
}

// exit turns Run's outcome into baton's: CMD's exit status.
func (c *runCommand) exit(err error, socks []supervisor.Socket, log *slog.Logger) error {
	var ee *supervisor.ExitError
	var se *supervisor.StartError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee):
		log.Info("exiting with the serving process's status", "pid", ee.PID, "status", ee.Status.String())
		return &exitError{code: ee.Status.ShellCode()}
	case errors.As(err, &se) && c.front:
		return fmt.Errorf("first start: %w (%s)", err, frontHint(socks))
	case errors.As(err, &se):
		return fmt.Errorf("first start: %w", err)
	}
	return err
}

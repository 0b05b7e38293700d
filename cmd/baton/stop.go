package main

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"
)

const stopUsage = `
baton stop (--pid PID | --pidfile FILE) [--timeout D]

Sends SIGTERM to the process and waits until it has exited: the graceful
stop of a handoff server, which drains its connections first.

Made for ExecStop= of a service whose main process is replaced at every
upgrade (package handoff). After the first upgrade the main process is no
longer systemd's child, and systemd does not wait for a main process that
is not its child: on 'systemctl stop' or 'restart' it sends SIGTERM and,
finding nothing else in the unit to wait for, SIGKILL at once, cutting the
drain short. With ExecStop= systemd waits for this command instead (up to
TimeoutStopSec=), so the server drains and exits on its own:

  ExecStop=/usr/local/bin/baton stop --pid $MAINPID

A process that is already gone is a success. The exit is observed through
a pidfd, so the process need not be baton's child.

Exit status: 0 the process has exited, 1 it is still running after
--timeout (or cannot be signalled), 2 bad command line.

Linux only: on other systems baton stop exits 1 at once ("baton stop: not
supported on darwin: ...").`

type stopCommand struct {
	io    stdio
	flags *flagSet
	target
	timeout time.Duration
}

func newStopCmd(io stdio) command {
	c := &stopCommand{io: io, flags: newFlagSet("stop", stopUsage, io.Stdout)}
	c.register(c.flags, "the process to stop")
	c.flags.DurationVar(&c.timeout, "timeout", 0, "give up after this long (0: wait until the process exits or baton is stopped)")
	return c
}

func (c *stopCommand) Run(ctx context.Context, args []string) error {
	if err := c.flags.parse(args); err != nil {
		return err
	}
	if err := c.flags.noArgs(); err != nil {
		return err
	}
	pid, err := c.resolve("stop")
	if err != nil {
		return err
	}
	if c.timeout < 0 {
		return usagef("stop", "--timeout must not be negative")
	}
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	err = terminate(ctx, pid)
	switch {
	case errors.Is(err, syscall.ESRCH):
		return nil // gone already
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("pid %d still running after %s", pid, c.timeout)
	case err != nil:
		return fmt.Errorf("pid %d: %w", pid, err)
	}
	return nil
}

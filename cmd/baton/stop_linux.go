package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// terminate sends SIGTERM to pid and waits until it has exited or ctx ends.
// The pidfd is opened first, so the signal cannot reach a process that
// reused the pid. It returns an error matching syscall.ESRCH when pid is
// gone already.
func terminate(ctx context.Context, pid int) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("pidfd: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, unix.SIGTERM, nil, 0); err != nil {
		return fmt.Errorf("SIGTERM: %w", err)
	}
	// The pidfd turns readable when the process exits. Poll in short
	// slices so that ctx is honoured without a second goroutine.
	const slice = 100 * time.Millisecond
	for {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(slice/time.Millisecond))
		switch {
		case err != nil && !errors.Is(err, unix.EINTR):
			return fmt.Errorf("poll pidfd: %w", err)
		case n > 0:
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

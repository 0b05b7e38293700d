package testproc

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// Subreaper makes the calling process the reaper of its descendants' orphans
// (PR_SET_CHILD_SUBREAPER) and reaps, from then on, every child that exits.
// A test of a chain of generations calls it from TestMain in the test
// process (not in a helper): each generation is orphaned when its
// predecessor exits, and would otherwise be reparented to PID 1, which in a
// container may never reap it. Nothing else in the process may wait for
// children afterwards (os/exec's Wait fails with ECHILD): Release what
// spawn.Start returns and wait with WaitGone.
func Subreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("child subreaper: %w", err)
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGCHLD)
	go func() {
		for range ch {
			reapAll()
		}
	}()
	reapAll() // children that exited before Notify
	return nil
}

// reapAll reaps every exited child without blocking.
func reapAll() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
	}
}

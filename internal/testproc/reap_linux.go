package testproc

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Subreaper makes the calling process the reaper of its descendants'
// orphans (PR_SET_CHILD_SUBREAPER). A test of a chain of generations calls
// it from TestMain, in the test process (not in a helper): each generation
// is orphaned when its predecessor exits and is reparented to the test
// rather than to PID 1, which in a container may never reap it; the test
// then reaps the generations it knows with Reap. Nothing is reaped behind
// anyone's back: a test that waits for its own child (os.Process.Wait)
// still gets its status.
func Subreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("child subreaper: %w", err)
	}
	return nil
}

// Reap collects each pid that is an exited child of this process (a
// zombie), without blocking, and leaves every other pid alone: one still
// running, one that is not a child (yet: its parent still runs), one gone.
func Reap(pids ...int) {
	for _, pid := range pids {
		for {
			var ws unix.WaitStatus
			_, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
			if !errors.Is(err, unix.EINTR) {
				break
			}
		}
	}
}

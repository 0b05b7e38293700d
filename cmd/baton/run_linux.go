package main

import (
	"time"

	"golang.org/x/sys/unix"
)

// growSignal and shrinkSignal resize baton run's pool by one worker, as
// gunicorn's SIGTTIN and SIGTTOU do.
const (
	growSignal   = unix.SIGTTIN
	shrinkSignal = unix.SIGTTOU
)

// setSubreaper makes baton the reaper of its descendants' orphans.
func setSubreaper() error { return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) }

// exitWatch observes the exit of a process that need not be a child,
// through a pidfd.
type exitWatch struct{ fd int }

func watchExit(pid int) *exitWatch {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		fd = -1
	}
	return &exitWatch{fd: fd}
}

// wait returns the time the process was seen gone, or false after limit.
func (w *exitWatch) wait(limit time.Duration) (time.Time, bool) {
	if w.fd < 0 {
		return time.Time{}, false
	}
	defer w.stop()
	deadline := time.Now().Add(limit)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return time.Time{}, false
		}
		fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(left.Milliseconds())+1)
		if err == nil && n > 0 {
			return time.Now(), true
		}
		if err != nil && err != unix.EINTR {
			return time.Time{}, false
		}
	}
}

func (w *exitWatch) stop() {
	if w.fd >= 0 {
		_ = unix.Close(w.fd)
		w.fd = -1
	}
}

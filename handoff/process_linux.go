package handoff

import (
	"errors"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// watched is a started successor with a pidfd to see its exit without
// reaping it.
type watched struct {
	p     *os.Process
	pidfd int
}

func newWatched(p *os.Process) *watched {
	fd, err := unix.PidfdOpen(p.Pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		fd = -1
	}
	return &watched{p: p, pidfd: fd}
}

func (w *watched) close() {
	if w.pidfd >= 0 {
		_ = unix.Close(w.pidfd)
	}
}

// exited waits up to d for the process to exit and reports whether it did.
func (w *watched) wait(d time.Duration) bool {
	if w.pidfd < 0 {
		return false
	}
	deadline := time.Now().Add(d)
	for {
		ms := int(time.Until(deadline) / time.Millisecond)
		if ms < 0 {
			ms = 0
		}
		fds := []unix.PollFd{{Fd: int32(w.pidfd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, ms)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err == nil && n > 0
	}
}

func (w *watched) exited() bool { return w.wait(0) }

// reap gives the process up to grace to exit, kills it otherwise, and
// returns how it ended.
func (w *watched) reap(grace time.Duration) string {
	_, how := w.reapState(grace)
	return how
}

// reapState is reap with the process's state, nil when Wait failed.
func (w *watched) reapState(grace time.Duration) (*os.ProcessState, string) {
	if !w.wait(grace) {
		_ = w.p.Kill()
	}
	st, err := w.p.Wait()
	if err != nil {
		return nil, err.Error()
	}
	return st, strings.TrimSpace(st.String())
}

// kill kills and reaps the process.
func (w *watched) kill() string { return w.reap(0) }

package supervisor

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/batonhq/baton/internal/control"
)

var (
	// ErrInProgress is returned (wrapped) by Upgrade while another
	// upgrade, its watch window or a worker's restart runs. It is
	// control.ErrInProgress.
	ErrInProgress = control.ErrInProgress
	// ErrNotRunning is returned by Upgrade, Signal and Stop outside Run.
	ErrNotRunning = errors.New("supervisor not running")
	// ErrStopping is returned (wrapped) by Upgrade after Stop, and by an
	// upgrade that a stop abandoned (its new CMD stopped). It is the value
	// `baton reload` reports as "stopping" (exit status 0: the stop
	// superseded the reload).
	ErrStopping = control.ErrStopping
	// ErrRolledBack is returned (wrapped) by UpgradeWith with WaitWindow
	// when the new CMD exited within the watch window and the old one
	// serves again. It is control.ErrRolledBack, which wraps
	// control.ErrFailed.
	ErrRolledBack = control.ErrRolledBack
	// ErrBinaryMissing means CMD's executable was not found or is not
	// executable.
	ErrBinaryMissing = errors.New("binary missing")
	// ErrExited means CMD exited before it was ready.
	ErrExited = errors.New("exited before ready")
	// ErrNotReady means CMD did not send READY=1 within ReadyTimeout.
	ErrNotReady = errors.New("not ready in time")
)

// ExitStatus is how a process ended.
type ExitStatus struct {
	Code   int            // exit code, -1 when killed by a signal
	Signal syscall.Signal // the signal that killed it, 0 otherwise
}

func (s ExitStatus) String() string {
	if s.Signal != 0 {
		return "killed by signal " + s.Signal.String()
	}
	return fmt.Sprintf("exit status %d", s.Code)
}

// ShellCode is the status a shell reports: the exit code, or 128+signal.
func (s ExitStatus) ShellCode() int {
	if s.Signal != 0 {
		return 128 + int(s.Signal)
	}
	return s.Code
}

// StartError is a CMD that could not be made ready.
type StartError struct {
	Path    string
	PID     int           // 0 when it was not started
	Status  *ExitStatus   // for ErrExited
	Timeout time.Duration // for ErrNotReady
	Err     error         // ErrBinaryMissing, ErrExited, ErrNotReady or a cause
}

func (e *StartError) Error() string {
	switch {
	case errors.Is(e.Err, ErrExited) && e.Status != nil:
		return fmt.Sprintf("%s (pid %d): child exited with %s before ready", e.Path, e.PID, e.Status)
	case errors.Is(e.Err, ErrNotReady):
		return fmt.Sprintf("%s (pid %d): not ready in %s", e.Path, e.PID, e.Timeout)
	case e.PID == 0:
		return fmt.Sprintf("%s: %v", e.Path, e.Err)
	}
	return fmt.Sprintf("%s (pid %d): %v", e.Path, e.PID, e.Err)
}

func (e *StartError) Unwrap() error { return e.Err }

// ExitError is returned by Run when the serving CMD exits by itself (with
// one worker), or when the last worker of a stopped pool has exited (the
// first non-zero status among them, else the last one's).
type ExitError struct {
	PID    int
	Status ExitStatus
}

func (e *ExitError) Error() string { return fmt.Sprintf("pid %d: %s", e.PID, e.Status) }

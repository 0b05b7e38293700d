package activation

import (
	"errors"
	"fmt"
)

// Receive returns the sockets (and other fds) the service manager passed
// to this process, as sd_listen_fds_with_names(3) defines them.
//
// It reads LISTEN_PID, LISTEN_PIDFDID, LISTEN_FDS and LISTEN_FDNAMES and
// unsets all four, whatever the outcome, so that no child inherits them.
// When LISTEN_PID is not set or names another process, LISTEN_PIDFDID is
// set and is not the inode number of a pidfd of this process (checked
// where the kernel has pidfs, Linux 6.9 and later, as libsystemd 258 does;
// below that it is parsed but not compared), or LISTEN_FDS is not set, it
// returns an error that errors.Is ErrNotActivated, and a nil *Set (an
// empty one): the process was not socket-activated. A malformed variable
// gives an *EnvError; a failing system call on an fd an *FDError. On an
// error no fd was wrapped or closed (close-on-exec may have been set on
// some), since the count is not to be trusted.
//
// On success every fd from 3 to 3+LISTEN_FDS-1 has close-on-exec set and
// is classified; an fd that duplicates an earlier one (same device, inode
// and access mode: a socket that came both from its socket unit and from
// the fd store) is closed, the earlier fd kept, and the copy's name, when
// it is another, added to the kept fd's Aliases.
//
// Call it once, early in main, before the process opens files or starts
// other processes. On platforms other than Linux it returns
// ErrNotActivated when the variables say so, and an error that errors.Is
// errors.ErrUnsupported otherwise.
func Receive() (*Set, error) {
	return receive(&osSys)
}

// readEnv reads the four variables, then unsets all of them, even when
// one fails to unset.
func readEnv(getenv func(string) (string, bool), unsetenv func(string) error) (environ, error) {
	var e environ
	e.pid, e.hasPID = getenv(EnvPID)
	e.pidfdID, e.hasPIDFDID = getenv(EnvPIDFDID)
	e.fds, e.hasFDs = getenv(EnvFDs)
	e.names, e.hasNames = getenv(EnvNames)
	var errs []error
	for _, v := range []string{EnvPID, EnvPIDFDID, EnvFDs, EnvNames} {
		if err := unsetenv(v); err != nil {
			errs = append(errs, fmt.Errorf("activation: unset %s: %w", v, err))
		}
	}
	return e, errors.Join(errs...)
}

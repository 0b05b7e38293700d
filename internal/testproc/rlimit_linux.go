package testproc

import (
	"testing"

	"golang.org/x/sys/unix"
)

// LimitFDs sets RLIMIT_NOFILE of the running process pid to n (soft and
// hard), so a test can make it run out of fds.
func LimitFDs(t testing.TB, pid int, n uint64) {
	t.Helper()
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: n, Max: n}, nil); err != nil {
		t.Fatalf("prlimit %d RLIMIT_NOFILE %d: %v", pid, n, err)
	}
}

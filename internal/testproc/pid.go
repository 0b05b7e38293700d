package testproc

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// waitLimit bounds the waits below; reaching it fails the test.
const waitLimit = 30 * time.Second

// Alive reports whether pid runs: it exists and is not a zombie.
func Alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

// WaitPIDFile waits until the pid file names a process other than old and
// returns it.
func WaitPIDFile(t testing.TB, path string, old int) int {
	t.Helper()
	for deadline := time.Now().Add(waitLimit); time.Now().Before(deadline); {
		b, err := os.ReadFile(path)
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil && pid != old {
			return pid
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("pid file %s still names %d", path, old)
	return 0
}

// WaitGone waits until pid no longer runs, and fails the test when it
// still does after a while. The process need not be the test's child.
func WaitGone(t testing.TB, pid int) {
	t.Helper()
	for deadline := time.Now().Add(waitLimit); Alive(pid) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if Alive(pid) {
		t.Errorf("pid %d still running", pid)
	}
}

package activation

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/batonhq/baton/internal/pidfs"
	"github.com/batonhq/baton/internal/testproc"
)

// requirePidfs skips the test on a kernel without pidfs (Linux 6.9+),
// where LISTEN_PIDFDID cannot be checked; under CI=true it fails.
func requirePidfs(t *testing.T) uint64 {
	t.Helper()
	id, ok := pidfs.Self()
	testproc.Require(t, ok, "needs a kernel with pidfs (Linux 6.9+) to tell processes by LISTEN_PIDFDID")
	return id
}

// TestReceivePIDFDID starts processes the way systemd 258+ does
// (LISTEN_PID and LISTEN_PIDFDID of the process itself) and the way a
// stale environment reaches a child (LISTEN_PID fixed, LISTEN_PIDFDID
// still the parent's): the first receives its sockets, the second is not
// activated and leaves every fd alone, and no variable is left set either
// way.
func TestReceivePIDFDID(t *testing.T) {
	testproc.CheckFDs(t)
	parent := requirePidfs(t)
	l, u := listenTCP(t), listenTCP(t)
	files := []*os.File{fileOf(t, l), fileOf(t, u)}
	for _, f := range files {
		t.Cleanup(func() { _ = f.Close() })
	}
	self := []string{envSelfPID + "=1", EnvFDs + "=2", EnvNames + "=http:admin"}

	t.Run("own", func(t *testing.T) {
		r := runHelper(t, "receive", files, append(self, envSelfPIDFDID+"=1"))
		if r.Err != "" || len(r.Files) != 2 {
			t.Fatalf("Receive: %q, %d files; want the 2 fds", r.Err, len(r.Files))
		}
		if len(r.EnvLeft) > 0 {
			t.Errorf("variables left set: %q", r.EnvLeft)
		}
	})
	t.Run("stale", func(t *testing.T) {
		stale := strconv.FormatUint(parent, 10)
		r := runHelper(t, "receive", files, append(self, "LISTEN_PIDFDID="+stale))
		want := fmt.Sprintf("activation: not socket-activated: LISTEN_PIDFDID=%s is another process's pidfd (this process's is ", stale)
		if !r.NotActivated || !strings.HasPrefix(r.Err, want) {
			t.Errorf("Receive: %q (not activated %v), want not activated: %s...", r.Err, r.NotActivated, want)
		}
		if len(r.Files) > 0 {
			t.Errorf("took %d fds meant for another process", len(r.Files))
		}
		if len(r.EnvLeft) > 0 {
			t.Errorf("variables left set: %q", r.EnvLeft)
		}
		if c := changed(r.Before, r.Closed); len(c) > 0 {
			t.Errorf("fds %v of another process closed", c)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		r := runHelper(t, "receive", files, append(self, "LISTEN_PIDFDID=12x"))
		if r.EnvVar != "LISTEN_PIDFDID" || r.Err != `activation: LISTEN_PIDFDID="12x": not a decimal number` {
			t.Errorf("Receive: %q (EnvError.Var %q), want an EnvError for LISTEN_PIDFDID", r.Err, r.EnvVar)
		}
		if len(r.EnvLeft) > 0 {
			t.Errorf("variables left set: %q", r.EnvLeft)
		}
	})
}

package pidfs

import (
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/internal/testproc"
)

// hasPidfs reports whether this kernel puts pidfds on pidfs (Linux 6.9+).
func hasPidfs(t *testing.T) bool {
	t.Helper()
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var sfs unix.Statfs_t
	return unix.Fstatfs(fd, &sfs) == nil && sfs.Type == Magic
}

func TestSelfIsStableAndDistinct(t *testing.T) {
	testproc.CheckFDs(t)
	if !hasPidfs(t) {
		if _, ok := Self(); ok {
			t.Fatal("Self reports an id on a kernel without pidfs")
		}
		t.Skip("this kernel has no pidfs (Linux 6.9+): Self reports false, as it must")
	}
	a, ok1 := Self()
	b, ok2 := Self()
	if !ok1 || !ok2 || a != b || a == 0 {
		t.Fatalf("Self: %d %v, then %d %v: want one non-zero id", a, ok1, b, ok2)
	}
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	c, ok := ID(cmd.Process.Pid)
	if !ok || c == a {
		t.Fatalf("child's id %d %v, own %d: want another id", c, ok, a)
	}
}

func TestIDOfNoProcess(t *testing.T) {
	if id, ok := ID(-1); ok {
		t.Fatalf("ID(-1) = %d, true", id)
	}
}

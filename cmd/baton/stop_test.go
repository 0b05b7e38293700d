//go:build linux

package main

import (
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testproc"
)

// startShell starts sh -c script and returns it; the test reaps it.
func startShell(t *testing.T, script string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	time.Sleep(100 * time.Millisecond) // let the shell install its trap
	return cmd
}

func TestStop(t *testing.T) {
	testproc.CheckFDs(t)
	t.Run("drains then exits", func(t *testing.T) {
		p := startShell(t, `trap 'sleep 0.3; exit 0' TERM; while :; do sleep 0.05; done`)
		r := baton(t, "stop", "--pid", strconv.Itoa(p.Process.Pid))
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("baton stop = %d %q, want 0", r.code, r.stderr)
		}
		// baton stop returned only after the process had exited: it is
		// a zombie waiting for this test to reap it.
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(p.Process.Pid, &ws, syscall.WNOHANG, nil)
		if err != nil || pid != p.Process.Pid || !ws.Exited() || ws.ExitStatus() != 0 {
			t.Errorf("after baton stop: wait4 = %d %v %v, want the process exited with 0", pid, ws, err)
		}
	})
	t.Run("ignores SIGTERM", func(t *testing.T) {
		p := startShell(t, `trap '' TERM; while :; do sleep 0.05; done`)
		r := baton(t, "stop", "--pid", strconv.Itoa(p.Process.Pid), "--timeout", "300ms")
		if r.code != 1 || !strings.Contains(r.stderr, "still running after 300ms") {
			t.Errorf("baton stop = %d %q, want 1 and still running", r.code, r.stderr)
		}
	})
	t.Run("gone already", func(t *testing.T) {
		p := exec.Command("true")
		if err := p.Run(); err != nil {
			t.Fatal(err)
		}
		r := baton(t, "stop", "--pid", strconv.Itoa(p.Process.Pid))
		if r.code != 0 {
			t.Errorf("baton stop of a reaped pid = %d %q, want 0", r.code, r.stderr)
		}
	})
	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{{"stop"}, {"stop", "--pid", "-3"}, {"stop", "--pid", "1", "--timeout", "-1s"}, {"stop", "--pid", "1", "extra"}} {
			if r := baton(t, args...); r.code != 2 {
				t.Errorf("baton %q = %d %q, want 2", args, r.code, r.stderr)
			}
		}
	})
}

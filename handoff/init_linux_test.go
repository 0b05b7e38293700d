package handoff

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/rawhttp"
	"github.com/batonhq/baton/internal/testproc"
)

// TestPID1 runs generation 1 as PID 1 of a pid namespace of its own, as a
// container's entrypoint: it hands over three times (SIGHUP to PID 1,
// which it passes on once it is init) without the namespace dying, and
// SIGTERM to PID 1 stops the serving generation; PID 1 exits with its
// status. (Before, PID 1 exited after the first hand-over and the kernel
// killed the successor: nothing served.)
func TestPID1(t *testing.T) {
	testproc.RequireRoot(t)
	testproc.CheckFDs(t)
	lf, addr := testproc.ListenerFile(t)
	defer lf.Close()
	cmd := testproc.Command(t, "server")
	cmd.Env = append(cmd.Env, "LISTEN_PID=1", "LISTEN_FDS=1", "LISTEN_FDNAMES=http")
	cmd.ExtraFiles = []*os.File{lf}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		if err := <-exited; err != nil {
			t.Logf("PID 1 at the end: %v", err)
		}
	}()
	servedBy := func() string {
		h, err := getHeaders("tcp", addr)
		if err != nil {
			return ""
		}
		return h.Get("X-Pid")
	}
	waitFor := func(what string, ok func(pid string) bool) string {
		t.Helper()
		for deadline := time.Now().Add(wait); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if pid := servedBy(); ok(pid) {
				return pid
			}
		}
		t.Fatalf("no answer from %s", what)
		return ""
	}
	prev := waitFor("PID 1", func(pid string) bool { return pid == "1" })
	l := startLoad(addr, 2, 2)
	for i := range 3 {
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		prev = waitFor("generation "+strconv.Itoa(i+2), func(pid string) bool { return pid != "" && pid != prev && pid != "1" })
	}
	l.stop()
	t.Logf("%d requests, %d failed, over 3 upgrades of PID 1; serving pid %s (in the namespace)", l.requests.Load(), l.failures.Load(), prev)
	if n := l.failures.Load(); n > 0 {
		t.Errorf("%d failed requests", n)
	}
	select {
	case err := <-exited:
		t.Fatalf("PID 1 exited after handing over: %v", err)
	default:
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		if err != nil {
			t.Errorf("PID 1 exited with %v, want the serving generation's status 0", err)
		}
	case <-time.After(wait):
		t.Fatal("PID 1 did not exit after SIGTERM")
	}
	exited <- nil // for the deferred wait
}

// TestPID1StopInWindow: PID 1 of a pid namespace (a container's
// entrypoint) with a watch window is stopped (docker stop) while its
// successor serves in the window: the successor, told to stop too, drains
// its requests before PID 1 exits and the kernel ends the namespace.
// Before, PID 1 returned from main at once and the request in flight on
// the successor was cut (an empty reply).
func TestPID1StopInWindow(t *testing.T) {
	testproc.RequireRoot(t)
	lf, addr := testproc.ListenerFile(t)
	defer lf.Close()
	cmd := testproc.Command(t, "server")
	cmd.Env = append(cmd.Env, "LISTEN_PID=1", "LISTEN_FDS=1", "LISTEN_FDNAMES=http", envTestWatch+"=30s")
	cmd.ExtraFiles = []*os.File{lf}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		if err := <-exited; err != nil {
			t.Logf("PID 1 at the end: %v", err)
		}
	}()
	servedBy := func(ok func(pid string) bool) {
		t.Helper()
		for deadline := time.Now().Add(wait); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if h, err := getHeaders("tcp", addr); err == nil && ok(h.Get("X-Pid")) {
				return
			}
		}
		t.Fatal("no answer")
	}
	servedBy(func(pid string) bool { return pid == "1" })
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	servedBy(func(pid string) bool { return pid != "" && pid != "1" }) // the successor, in its window
	long := make(chan error, 1)
	go func() {
		h, err := (&rawhttp.Client{Addr: addr, Timeout: wait}).Get("/?ms=2000")
		if err == nil && (h.Get("X-Pid") == "1" || h.Get("X-Pid") == "") {
			err = errors.New("answered by PID 1, not the successor")
		}
		long <- err
	}()
	time.Sleep(300 * time.Millisecond) // on its way: not asserted on
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-long; err != nil {
		t.Errorf("the request in flight on the successor: %v", err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("PID 1 exited with %v, want 0", err)
		}
	case <-time.After(wait):
		t.Fatal("PID 1 did not exit after SIGTERM")
	}
	exited <- nil // for the deferred wait
}

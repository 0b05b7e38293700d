package control

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

func TestTrackerFollowsNewPids(t *testing.T) {
	tr := NewTracker()
	t0 := time.Now()
	tr.Observe(10, t0)
	tr.Observe(10, t0.Add(time.Millisecond))
	if got := tr.Current(); got != 10 {
		t.Fatalf("current = %d, want 10", got)
	}
	tr.Observe(11, t0.Add(2*time.Millisecond))
	tr.Observe(10, t0.Add(3*time.Millisecond)) // draining old generation
	if got := tr.Current(); got != 11 {
		t.Fatalf("current = %d after the old one answered again, want 11", got)
	}
	pid, at, err := tr.WaitNew(t.Context(), 10, t0)
	if err != nil || pid != 11 || !at.Equal(t0.Add(2*time.Millisecond)) {
		t.Fatalf("WaitNew = %d, %v, %v", pid, at, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := tr.WaitNew(ctx, 11, t0); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitNew with no new pid: %v", err)
	}
	done := make(chan int)
	go func() {
		pid, _, _ := tr.WaitNew(t.Context(), 11, t0)
		done <- pid
	}()
	tr.Observe(12, time.Now())
	if got := <-done; got != 12 {
		t.Fatalf("WaitNew woke with %d, want 12", got)
	}
}

func TestProcFiles(t *testing.T) {
	if exited, err := State(os.Getpid()); err != nil || exited {
		t.Fatalf("State(self) = %v, %v", exited, err)
	}
	if n, err := FDCount(os.Getpid()); err != nil || n < 3 {
		t.Fatalf("FDCount(self) = %d, %v", n, err)
	}
	if kb, err := RSSKiB(os.Getpid()); err != nil || kb <= 0 {
		t.Fatalf("RSSKiB(self) = %d, %v", kb, err)
	}
	if _, err := CPUTime(os.Getpid()); err != nil {
		t.Fatalf("CPUTime(self): %v", err)
	}
	truePath, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no true(1)")
	}
	cmd := exec.Command(truePath)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	w := NewWatcher(WatcherConfig{})
	defer w.Close()
	w.Watch(pid)
	if err := w.WaitAll(t.Context()); err != nil { // a zombie counts as exited
		t.Fatal(err)
	}
	if _, ok := w.Exited(pid); !ok {
		t.Fatal("exit not recorded")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if exited, err := State(pid); err != nil || !exited {
		t.Fatalf("State(reaped) = %v, %v", exited, err)
	}
	if _, err := CPUTime(pid); !errors.Is(err, ErrGone) {
		t.Fatalf("CPUTime(reaped) err = %v", err)
	}
	if _, err := FDCount(pid); !errors.Is(err, ErrGone) {
		t.Fatalf("FDCount(reaped) err = %v", err)
	}
}

func TestTriggers(t *testing.T) {
	if old, err := (Signal{Sig: syscall.Signal(0)}).Fire(t.Context(), os.Getpid()); err != nil || old != os.Getpid() {
		t.Errorf("signal 0 to self: %d, %v", old, err)
	}
	pidfile := filepath.Join(t.TempDir(), "pid")
	if err := os.WriteFile(pidfile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if old, err := (Signal{Sig: syscall.Signal(0), PidFile: pidfile}).Fire(t.Context(), 1); err != nil || old != os.Getpid() {
		t.Errorf("signal 0 through the pid file: %d, %v", old, err)
	}
	if old, err := (Signal{Sig: syscall.Signal(0), Pid: os.Getpid()}).Fire(t.Context(), 1); err != nil || old != 0 {
		t.Errorf("signal 0 to a fixed pid: %d, %v", old, err)
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	if _, err := (Command{Args: []string{sh, "-c", `test "$0" = 42`, "{pid}"}}).Fire(t.Context(), 42); err != nil {
		t.Errorf("command with {pid}: %v", err)
	}
	if _, err := (Command{Args: []string{sh, "-c", "echo no; exit 3"}}).Fire(t.Context(), 1); err == nil {
		t.Error("failing command gave no error")
	}
}

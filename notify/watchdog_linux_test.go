package notify

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/batonhq/baton/internal/testproc"
	"golang.org/x/sys/unix"
)

// fakeEnv is a sysenv with a fixed environment and pids.
func fakeEnv(env map[string]string, pid, ppid int) *sysenv {
	s := *defaultSys
	s.getpid = func() int { return pid }
	s.getppid = func() int { return ppid }
	s.lookupEnv = func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	s.setenv = func(k, v string) error { env[k] = v; return nil }
	return &s
}

func TestWatchdogEnabled(t *testing.T) {
	const pid, ppid = 100, 50
	tests := []struct {
		name  string
		env   map[string]string
		claim bool
		want  time.Duration
		err   string // the variable an *EnvError must name
	}{
		{"unset", map[string]string{}, false, 0, ""},
		{"no pid", map[string]string{EnvWatchdogUsec: "2000000"}, false, 2 * time.Second, ""},
		{"own pid", map[string]string{EnvWatchdogUsec: "30000000", EnvWatchdogPID: "100"}, false, 30 * time.Second, ""},
		{"foreign pid", map[string]string{EnvWatchdogUsec: "2000000", EnvWatchdogPID: "7"}, false, 0, ""},
		{"foreign pid, claim", map[string]string{EnvWatchdogUsec: "2000000", EnvWatchdogPID: "7"}, true, 0, ""},
		{"parent pid", map[string]string{EnvWatchdogUsec: "2000000", EnvWatchdogPID: "50"}, false, 0, ""},
		{"parent pid, claim", map[string]string{EnvWatchdogUsec: "2000000", EnvWatchdogPID: "50"}, true, 2 * time.Second, ""},
		{"pid only", map[string]string{EnvWatchdogPID: "100"}, false, 0, ""},
		{"usec zero", map[string]string{EnvWatchdogUsec: "0"}, false, 0, EnvWatchdogUsec},
		{"usec empty", map[string]string{EnvWatchdogUsec: ""}, false, 0, EnvWatchdogUsec},
		{"usec junk", map[string]string{EnvWatchdogUsec: "2s"}, false, 0, EnvWatchdogUsec},
		{"usec negative", map[string]string{EnvWatchdogUsec: "-1"}, false, 0, EnvWatchdogUsec},
		{"usec overflow", map[string]string{EnvWatchdogUsec: "18446744073709551615"}, false, 0, EnvWatchdogUsec},
		{"pid junk", map[string]string{EnvWatchdogUsec: "1", EnvWatchdogPID: "abc"}, false, 0, EnvWatchdogPID},
		{"pid zero", map[string]string{EnvWatchdogUsec: "1", EnvWatchdogPID: "0"}, false, 0, EnvWatchdogPID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := WatchdogEnabled(WatchdogConfig{ClaimFromParent: tt.claim, sys: fakeEnv(tt.env, pid, ppid)})
			if tt.err != "" {
				var ee *EnvError
				if !errors.As(err, &ee) || ee.Var != tt.err || ee.Value != tt.env[tt.err] || !errors.Is(err, ErrBadEnv) {
					t.Fatalf("got %v, want an *EnvError for %s", err, tt.err)
				}
				t.Log(err)
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// TestRunWatchdogSynctest runs the ping loop in a bubble with
// WATCHDOG_USEC=1s for 9.75s of fake time: one ping at once and one every
// 500ms, 20 in all, counted by a real receiver.
func TestRunWatchdogSynctest(t *testing.T) {
	testproc.CheckFDs(t)
	r := newReceiver(t, false)
	c := dialT(t, r)
	counts := map[string]int{}
	var wg sync.WaitGroup
	wg.Go(func() { // outside the bubble: it blocks on real I/O
		for {
			m, err := r.tryRecv(10 * time.Second)
			if err != nil {
				t.Error(err)
				return
			}
			if m.pid != int32(os.Getpid()) {
				t.Errorf("sender pid %d", m.pid)
			}
			counts[m.data]++
			if m.data == "STATUS=done" {
				return
			}
		}
	})
	env := map[string]string{EnvWatchdogUsec: "1000000", EnvWatchdogPID: "100"}
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 9750*time.Millisecond)
		defer cancel()
		if err := c.RunWatchdog(ctx, WatchdogConfig{sys: fakeEnv(env, 100, 1)}); err != nil {
			t.Error(err)
		}
	})
	if err := c.Status("done"); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if counts["WATCHDOG=1"] != 20 || len(counts) != 2 {
		t.Errorf("received %v, want 20 WATCHDOG=1", counts)
	}
}

// TestRunWatchdogNotOurs: with a foreign WATCHDOG_PID RunWatchdog returns
// at once and sends nothing; a malformed variable is an error.
func TestRunWatchdogNotOurs(t *testing.T) {
	r := newReceiver(t, false)
	c := dialT(t, r)
	t.Setenv(EnvWatchdogUsec, "1000")
	t.Setenv(EnvWatchdogPID, strconv.Itoa(os.Getppid()))
	if err := c.RunWatchdog(t.Context(), WatchdogConfig{}); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvWatchdogPID, "1")
	if err := c.RunWatchdog(t.Context(), WatchdogConfig{ClaimFromParent: true}); err != nil {
		t.Fatal(err)
	}
	r.expectNothing()
	t.Setenv(EnvWatchdogPID, "x")
	if err := c.RunWatchdog(t.Context(), WatchdogConfig{}); !errors.Is(err, ErrBadEnv) {
		t.Fatalf("got %v, want ErrBadEnv", err)
	}
	r.expectNothing()
}

// TestRunWatchdogFailure: pings that fail for a whole watchdog timeout
// (three in a row) end the loop with the error, each passed to OnError.
func TestRunWatchdogFailure(t *testing.T) {
	r := newReceiver(t, false)
	c := dialT(t, r)
	_ = r.conn.Close()
	t.Setenv(EnvWatchdogUsec, "1000")
	t.Setenv(EnvWatchdogPID, strconv.Itoa(os.Getpid()))
	var seen []error
	var se *SocketError
	err := c.RunWatchdog(t.Context(), WatchdogConfig{OnError: func(err error) { seen = append(seen, err) }})
	if !errors.As(err, &se) {
		t.Fatalf("got %v, want a *SocketError", err)
	}
	if len(seen) != 3 {
		t.Errorf("OnError called %d times, want 3: %v", len(seen), seen)
	}
}

// TestRunWatchdogRetry: a failed ping does not stop the pings: once the
// manager answers again (here a receiver bound anew at the same path)
// they arrive, and RunWatchdog runs on until ctx ends.
func TestRunWatchdogRetry(t *testing.T) {
	testproc.CheckFDs(t)
	r := newReceiver(t, false)
	c := dialT(t, r)
	_ = r.conn.Close()
	if err := os.Remove(r.socket); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvWatchdogUsec, "100000") // a ping every 50 ms
	t.Setenv(EnvWatchdogPID, strconv.Itoa(os.Getpid()))
	back := make(chan *receiver, 1)
	failures := 0
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- c.RunWatchdog(ctx, WatchdogConfig{OnError: func(error) {
			failures++
			if failures == 1 { // the manager comes back
				back <- rebind(t, r.socket)
			}
		}})
	}()
	r2 := <-back
	if m, err := r2.tryRecv(10 * time.Second); err != nil || m.data != "WATCHDOG=1" {
		t.Fatalf("after a failed ping: %v %v, want WATCHDOG=1", m, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("RunWatchdog = %v, want nil after a transient failure", err)
	}
	if failures != 1 {
		t.Errorf("%d failed pings, want 1", failures)
	}
}

// rebind binds a receiver at path (as newReceiver does).
func rebind(t *testing.T, path string) *receiver {
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Error(err)
		return nil
	}
	rc, err := conn.SyscallConn()
	if err == nil {
		err = rc.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1) })
	}
	if err != nil {
		t.Error(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &receiver{t: t, conn: conn, socket: path}
}

// TestWatchdogSuccessor runs a real child with WATCHDOG_PID set to this
// process, its parent: with ClaimFromParent it pings (every datagram
// attributed to the child's pid) and rewrites WATCHDOG_PID to its own pid;
// without, it sends nothing but the closing STATUS=done.
func TestWatchdogSuccessor(t *testing.T) {
	testproc.CheckFDs(t)
	for _, claim := range []bool{true, false} {
		t.Run(map[bool]string{true: "claim", false: "inherit"}[claim], func(t *testing.T) {
			r := newReceiver(t, true)
			cmd := testproc.Command(t, "notify-watchdog", map[bool]string{true: "claim", false: "no"}[claim])
			cmd.Env = append(cmd.Env, EnvSocket+"="+r.socket, EnvWatchdogUsec+"=20000", EnvWatchdogPID+"="+strconv.Itoa(os.Getpid()))
			var out bytes.Buffer
			cmd.Stdout = &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			pings := 0
			for {
				m, err := r.tryRecv(10 * time.Second)
				if err != nil {
					_ = cmd.Process.Kill()
					_ = cmd.Wait()
					t.Fatal(err)
				}
				if m.pid != int32(cmd.Process.Pid) {
					t.Errorf("datagram from pid %d, want the child %d", m.pid, cmd.Process.Pid)
				}
				if m.data == "STATUS=done" {
					break
				}
				if m.data != "WATCHDOG=1" {
					t.Errorf("got %q", m.data)
				}
				pings++
			}
			if err := cmd.Wait(); err != nil {
				t.Fatal(err)
			}
			gotPID := strings.TrimSpace(out.String())
			if claim {
				if pings == 0 {
					t.Errorf("no pings from the claiming successor")
				}
				if gotPID != strconv.Itoa(cmd.Process.Pid) {
					t.Errorf("child's WATCHDOG_PID=%s after the claim, want its own pid %d", gotPID, cmd.Process.Pid)
				}
			} else {
				if pings != 0 {
					t.Errorf("%d pings from a child that did not claim", pings)
				}
				if gotPID != strconv.Itoa(os.Getpid()) {
					t.Errorf("child's WATCHDOG_PID=%s changed", gotPID)
				}
			}
			t.Logf("%d pings", pings)
		})
	}
}

// TestHandOverFromChild: a real old generation sends READY, the hand-over
// and a barrier, then exits; every datagram is attributed to its pid, and it
// exits only after the receiver closed the barrier fd.
func TestHandOverFromChild(t *testing.T) {
	testproc.CheckFDs(t)
	r := newReceiver(t, false)
	cmd := testproc.Command(t, "notify-handover")
	cmd.Env = append(cmd.Env, EnvSocket+"="+r.socket)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for _, want := range []string{"READY=1", "MAINPID=4242\nREADY=1", "BARRIER=1"} {
		m := r.recv()
		if m.data != want {
			t.Errorf("got %q, want %q", m.data, want)
		}
		if m.pid != int32(cmd.Process.Pid) {
			t.Errorf("%q from pid %d, want the child %d", m.data, m.pid, cmd.Process.Pid)
		}
		if want == "BARRIER=1" {
			if len(m.files) != 1 {
				t.Fatalf("barrier with %d fds", len(m.files))
			}
			select {
			case err := <-exited:
				t.Fatalf("child exited (%v) before the barrier fd was closed", err)
			default:
			}
		}
		m.closeFiles()
	}
	if err := <-exited; err != nil {
		t.Fatal(err)
	}
}

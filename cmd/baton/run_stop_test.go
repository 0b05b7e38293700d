//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/control"
	"github.com/batonhq/baton/internal/rawhttp"
	"github.com/batonhq/baton/internal/testproc"
	"github.com/batonhq/baton/notify"
)

// managerMessages listens as systemd would and returns the socket for
// NOTIFY_SOCKET and a function that waits for a message from pid holding
// want.
func managerMessages(t *testing.T) (string, func(pid int, want string)) {
	t.Helper()
	mgr, err := notify.Listen(filepath.Join(t.TempDir(), "notify"))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []*notify.Message
	changed := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := mgr.Receive(context.Background())
			if err != nil {
				return
			}
			_ = m.Close()
			mu.Lock()
			got = append(got, m)
			mu.Unlock()
			select {
			case changed <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() { _ = mgr.Close(); <-done })
	return mgr.Socket(), func(pid int, want string) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			mu.Lock()
			var states []string
			for _, m := range got {
				if m.PID == pid && strings.Contains(m.State, want) {
					mu.Unlock()
					return
				}
				states = append(states, m.State)
			}
			mu.Unlock()
			select {
			case <-changed:
			case <-deadline:
				t.Fatalf("no %q from pid %d; got %q", want, pid, states)
			}
		}
	}
}

// TestRunStopDelay: on SIGTERM with --stop-delay, baton says STOPPING=1
// at once and refuses reloads, while CMD serves fresh and keep-alive
// clients on for the delay without a failure; a second SIGTERM ends the
// delay, and a short delay ends by itself.
func TestRunStopDelay(t *testing.T) {
	bin := buildExample(t, t.TempDir())
	t.Run("second signal", func(t *testing.T) {
		socket, await := managerMessages(t)
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
		cmd := exec.Command(batonBin, "run", "--stop-delay", "1m", "--listen", "http=tcp://"+addr, "--", bin, "-listen", addr)
		cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+socket)
		s := startRun(t, cmd, "http://"+addr+"/")
		baton := s.cmd.Process.Pid
		serving, err := s.get()
		if err != nil {
			t.Fatal(err)
		}
		l := rawhttp.StartLoad(addr, 4, halfKeepAlive)
		defer l.Stop()
		l.Await(20)
		if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		await(baton, "STOPPING=1")
		atStop := l.OK.Load()
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		_, err = control.Reload(ctx, baton)
		cancel()
		if !errors.Is(err, control.ErrStopping) {
			t.Errorf("reload during the stop delay = %v, want %v", err, control.ErrStopping)
		}
		l.Await(200)
		l.Stop()
		t.Logf("%d requests after STOPPING=1 (%d in all), %d failed", l.OK.Load()-atStop, l.OK.Load(), l.Failed.Load())
		if l.Failed.Load() != 0 {
			t.Errorf("%d requests failed during the stop delay, first: %v", l.Failed.Load(), l.Errors())
		}
		if pid, err := s.get(); err != nil || pid != serving {
			t.Errorf("during the stop delay the answer came from %d (%v), want %d", pid, err, serving)
		}
		if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		// Well before the minute.
		if code := s.exitCode(t); code != 0 {
			t.Errorf("baton run exited %d, want 0\n%s", code, s.stderr)
		}
		if !strings.Contains(s.stderr.String(), "stop delay cut short") {
			t.Errorf("no \"stop delay cut short\" in the log:\n%s", s.stderr)
		}
	})
	t.Run("expires", func(t *testing.T) {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
		s := startRun(t, exec.Command(batonBin, "run", "--stop-delay", "300ms", "--listen", "http=tcp://"+addr, "--", bin, "-listen", addr), "http://"+addr+"/")
		if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := s.exitCode(t); code != 0 {
			t.Errorf("baton run exited %d, want 0\n%s", code, s.stderr)
		}
		if !strings.Contains(s.stderr.String(), "stop delay over") {
			t.Errorf("no \"stop delay over\" in the log:\n%s", s.stderr)
		}
	})
}

// awaitAll waits until every client's last answer came from pid.
func awaitAll(t *testing.T, l *rawhttp.Load, pid int) {
	t.Helper()
	if ok, i, last := l.AwaitAll(pid, 30*time.Second); !ok {
		t.Fatalf("client %d: last answer from %d, want %d", i, last, pid)
	}
}

// heldConn is a connection with a slow request in flight.
type heldConn struct {
	c  net.Conn
	br *bufio.Reader
}

// holdSlow opens a connection answered by pid and sends it a request that
// takes ms milliseconds.
func holdSlow(t *testing.T, addr string, pid, ms int) *heldConn {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		h := &heldConn{c: c, br: bufio.NewReader(c)}
		got, closed, err := h.do("/")
		if err != nil {
			t.Fatal(err)
		}
		if got == pid && !closed {
			if _, err := fmt.Fprintf(c, "GET /?ms=%d HTTP/1.1\r\nHost: t\r\n\r\n", ms); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			return h
		}
		_ = c.Close() // an old CMD took a last connection
		if time.Now().After(deadline) {
			t.Fatalf("no connection answered by pid %d", pid)
		}
	}
}

func (h *heldConn) do(path string) (int, bool, error) {
	if _, err := io.WriteString(h.c, "GET "+path+" HTTP/1.1\r\nHost: t\r\n\r\n"); err != nil {
		return 0, false, err
	}
	return h.receive()
}

// receive reads a 200 response and returns its X-Pid and whether the
// server closes the connection.
func (h *heldConn) receive() (int, bool, error) {
	resp, err := http.ReadResponse(h.br, nil)
	if err != nil {
		return 0, false, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("status %s", resp.Status)
	}
	pid, _ := strconv.Atoi(resp.Header.Get("X-Pid"))
	return pid, resp.Close, err
}

// TestRunMaxDraining: with --max-draining 2 and every CMD holding a 5 s
// request, the third reload kills the first CMD (still draining), the
// second and third drain on, and fresh clients see no failure.
func TestRunMaxDraining(t *testing.T) {
	bin := buildExample(t, t.TempDir())
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	s := startRun(t, exec.Command(batonBin, "run", "--max-draining", "2", "--listen", "http=tcp://"+addr, "--", bin, "-listen", addr), "http://"+addr+"/")
	baton := s.cmd.Process.Pid
	first, err := s.get()
	if err != nil {
		t.Fatal(err)
	}
	l := rawhttp.StartLoad(addr, 4, nil)
	defer l.Stop()
	pids := []int{first}
	held := []*heldConn{holdSlow(t, addr, first, 5000)}
	for i := range 3 {
		if i == 2 {
			awaitAll(t, l, pids[2]) // no client has a request on the first CMD
		}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		pid, err := control.Reload(ctx, baton)
		cancel()
		if err != nil {
			t.Fatalf("reload %d: %v\n%s", i+1, err, s.stderr)
		}
		pids = append(pids, pid)
		held = append(held, holdSlow(t, addr, pid, 5000))
	}
	testproc.WaitGone(t, pids[0])
	for _, pid := range pids[1:3] {
		if !testproc.Alive(pid) {
			t.Errorf("pid %d is gone, want it draining", pid)
		}
	}
	awaitAll(t, l, pids[3])
	l.Await(100)
	l.Finish(t, "3 reloads")
	if _, _, err := held[0].receive(); err == nil {
		t.Error("the request held by the first CMD was answered")
	}
	for i, h := range held[1:3] {
		if pid, _, err := h.receive(); err != nil || pid != pids[i+1] {
			t.Errorf("request held by pid %d: from %d, %v", pids[i+1], pid, err)
		}
	}
	// The log is read once baton has exited.
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := s.exitCode(t); code != 0 {
		t.Errorf("baton run exited %d, want 0", code)
	}
	want := fmt.Sprintf("force-closed draining generation 1 (pid %d): MaxDraining=2", pids[0])
	if !strings.Contains(s.stderr.String(), want) {
		t.Errorf("no %q in the log:\n%s", want, s.stderr)
	}
}

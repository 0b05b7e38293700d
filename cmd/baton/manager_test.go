//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/control"
	"github.com/batonhq/baton/notify"
)

// TestRunUnderManager plays systemd's part: baton run gets a NOTIFY_SOCKET
// the test listens on. Every message must come from baton itself (it stays
// the main pid, never sends MAINPID=): READY=1 once the first CMD is
// ready, the CMD's STATUS= and WATCHDOG=1, RELOADING=1 with
// MONOTONIC_USEC= and READY=1 around an upgrade, STOPPING=1 at the end.
func TestRunUnderManager(t *testing.T) {
	bin := buildGoChild(t)
	mgr, err := notify.Listen(filepath.Join(t.TempDir(), "notify"))
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()
	msgs := make(chan *notify.Message, 100)
	go func() {
		defer close(msgs)
		for {
			m, err := mgr.Receive(context.Background())
			if err != nil {
				return
			}
			_ = m.Close()
			msgs <- m
		}
	}()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	cmd := exec.Command(batonBin, "run", "--listen", "http=tcp://"+addr, "--", bin)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+mgr.Socket())
	s := startRun(t, cmd, "http://"+addr+"/")
	baton := s.cmd.Process.Pid

	var pending []string // received, not matched yet
	next := func(want string) {
		t.Helper()
		for i, m := range pending {
			if strings.Contains(m, want) {
				pending = append(pending[:i], pending[i+1:]...)
				return
			}
		}
		for {
			select {
			case m := <-msgs:
				if m.PID != baton {
					t.Errorf("message %q from pid %d, not baton (%d)", m.State, m.PID, baton)
				}
				if strings.Contains(m.State, "MAINPID") {
					t.Errorf("baton sent %q", m.State)
				}
				if strings.Contains(m.State, want) {
					return
				}
				pending = append(pending, m.State)
			case <-time.After(30 * time.Second):
				t.Fatalf("no %q from baton; got %q", want, pending)
			}
		}
	}
	next("READY=1")
	next("WATCHDOG=1")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	pid, err := control.Reload(ctx, baton)
	if err != nil {
		t.Fatal(err)
	}
	next("RELOADING=1\nMONOTONIC_USEC=")
	next("READY=1\nSTATUS=serving from " + fmt.Sprint(pid))
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	if code := s.exitCode(t); code != 0 {
		t.Errorf("baton run exited %d after SIGTERM", code)
	}
	next("STOPPING=1")
}

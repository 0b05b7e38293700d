//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/batonhq/baton/internal/rawhttp"
	"github.com/batonhq/baton/internal/testproc"
)

// TestRunWatchWindow: with --watch-window, a new version that dies 300ms
// after the cut-over is rolled back under load without a failed request:
// `baton reload` returns at the cut-over (and a second one is refused
// during the window), `baton reload --wait-window` exits 1 with the
// rollback, systemd gets STATUS=, `baton status` lists it. A window that
// passes quietly stops the old CMD after it.
func TestRunWatchWindow(t *testing.T) {
	reps := testproc.Rounds(4, 20)
	real := buildGoChild(t)
	bin := filepath.Join(t.TempDir(), "server")
	good := []byte("#!/bin/sh\nexec " + real + "\n")
	dying := []byte("#!/bin/sh\nGOCHILD_DIE_AFTER=300ms exec " + real + "\n")
	testproc.InstallContent(t, bin, good)
	socket, await := managerMessages(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	cmd := exec.Command(batonBin, "run", "--watch-window", "4s", "--listen", "http=tcp://"+addr, "--", bin)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+socket)
	s := startRun(t, cmd, "http://"+addr+"/")
	bpid := strconv.Itoa(s.cmd.Process.Pid)
	old, err := s.get()
	if err != nil {
		t.Fatal(err)
	}
	l := rawhttp.StartLoad(addr, 8, halfKeepAlive)
	defer l.Stop()

	testproc.InstallContent(t, bin, dying)
	r := reload(t, "--pid", bpid)
	if pid, err := strconv.Atoi(strings.TrimSpace(r.stdout)); r.code != 0 || err != nil || pid == old {
		t.Fatalf("reload = %d %q %q, want 0 and the new pid at the cut-over", r.code, r.stdout, r.stderr)
	}
	if r := reload(t, "--pid", bpid); r.code != exitInProgress || !strings.Contains(r.stderr, "upgrade already in progress (watch window until ") {
		t.Errorf("reload during the window = %d %q, want %d: in progress (watch window until T)", r.code, r.stderr, exitInProgress)
	}
	awaitPool(t, s.cmd.Process.Pid, "the rollback", func(st runStatusJSON) bool { return st.Counters.RolledBack == 1 })
	for i := range reps {
		r := reload(t, "--pid", bpid, "--wait-window")
		if r.code != 1 || !strings.Contains(r.stderr, "rolled back in the watch window: new pid") || !strings.Contains(r.stderr, fmt.Sprintf("pid %d serves again", old)) {
			t.Fatalf("reload --wait-window %d = %d %q, want 1: rolled back", i+1, r.code, r.stderr)
		}
	}
	await(s.cmd.Process.Pid, "STATUS=rolled back: pid ")
	r = baton(t, "status", "--pid", bpid)
	if want := fmt.Sprintf("failed %d (%d rolled back)", reps+1, reps+1); r.code != 0 || !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, "rolled-back") {
		t.Errorf("status: %d, want %q and rolled-back upgrades:\n%s%s", r.code, want, r.stdout, r.stderr)
	}
	t.Logf("baton status after the rollbacks:\n%s", r.stdout)
	if got, err := s.get(); err != nil || got != old {
		t.Errorf("after the rollbacks pid %d (%v) answers, want %d", got, err, old)
	}

	// A window that passes: the old CMD waits on standby, then goes.
	testproc.InstallContent(t, bin, good)
	r = reload(t, "--pid", bpid)
	if r.code != 0 {
		t.Fatalf("reload = %d %q", r.code, r.stderr)
	}
	st := poolStatusOf(t, s.cmd.Process.Pid)
	if len(st.Children) != 2 || st.Children[0].PID != old || st.Children[0].State != "standby" {
		t.Errorf("during the window: %+v, want pid %d on standby", st.Children, old)
	}
	testproc.WaitGone(t, old)
	l.Await(50)
	l.Stop()
	t.Logf("%d rollbacks and a window that passed: %d requests, %d failed", reps+1, l.OK.Load(), l.Failed.Load())
	if l.Failed.Load() != 0 {
		t.Errorf("%d requests failed, first: %v", l.Failed.Load(), l.Errors())
	}
}

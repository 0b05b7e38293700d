package handoff

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/rawhttp"
	"github.com/batonhq/baton/internal/testproc"
)

// awaitAll waits until every client's last answer came from pid: none of
// them has a request on an older generation any more.
func awaitAll(t testing.TB, l *rawhttp.Load, pid int) {
	t.Helper()
	if ok, i, last := l.AwaitAll(pid, wait); !ok {
		t.Fatalf("client %d: last answer from %d, want %d", i, last, pid)
	}
}

// hold opens a connection to generation pid and leaves a request on it
// that its handler answers only once the file gate exists.
func hold(t testing.TB, addr string, pid int, gate string) *httpConn {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		c, err := dialHTTP("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		h, err := c.do("/")
		if err != nil {
			t.Fatal(err)
		}
		if h.Get("X-Pid") == strconv.Itoa(pid) && h.Get("Connection") == "" {
			if err := c.send("/?wait=" + gate); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			return c
		}
		// The old generation took a last connection.
		_ = c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("no connection to pid %d", pid)
		}
	}
}

// TestMaxDraining: with MaxDraining 2 and every generation holding a
// request open, the third upgrade force-closes generation 1 (SIGKILL) and
// says so in STATUS=, generations 2 and 3 go on draining, and fresh
// clients see no failure throughout.
func TestMaxDraining(t *testing.T) {
	testproc.CheckFDs(t)
	s := startService(t, serviceOpts{env: []string{envMaxDraining + "=2"}})
	gate := filepath.Join(t.TempDir(), "gate")
	l := rawhttp.StartLoad(s.addr, 4, nil)
	defer l.Stop()
	gens := []int{s.gen1}
	held := []*httpConn{hold(t, s.addr, s.gen1, gate)}
	for i := range 3 {
		if i == 2 {
			// No client of the load has a request on generation 1.
			awaitAll(t, l, gens[2])
		}
		next := mustReload(t, gens[len(gens)-1])
		gens = append(gens, next)
		held = append(held, hold(t, s.addr, next, gate))
	}
	if ws := s.waitExit(gens[0]); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("generation 1 ended with %v, want killed by SIGKILL", ws)
	}
	for i, pid := range gens[1:3] {
		if s.exited(pid) {
			t.Errorf("generation %d (pid %d) is gone, want it draining", i+2, pid)
		}
	}
	note := fmt.Sprintf("force-closed draining generation 1 (pid %d): MaxDraining=2", gens[0])
	s.notes.waitFor(t, "the upgrade's STATUS=", has(gens[2], "STATUS=upgrading to generation 4; "+note))
	s.notes.waitFor(t, "the successor's STATUS=", func(msgs []message) bool {
		prefix := fmt.Sprintf("STATUS=serving, generation 4, pid %d, upgraded in ", gens[3])
		return has(gens[3], prefix)(msgs) && has(gens[3], "; "+note)(msgs)
	})

	awaitAll(t, l, gens[3])
	l.Await(100)
	l.Finish(t, "3 upgrades")

	// Generation 1's request died with it; the others are answered once
	// the gate opens, and their generations drain and exit.
	if _, err := held[0].receive(); err == nil {
		t.Error("the request held on generation 1 was answered")
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for i, c := range held[1:] {
		if h, err := c.receive(); err != nil || h.Get("X-Pid") != strconv.Itoa(gens[i+1]) {
			t.Errorf("request held on generation %d: %v, %v", i+2, h, err)
		}
	}
	for _, pid := range gens[1:3] {
		if ws := s.waitExit(pid); ws.ExitStatus() != 0 {
			t.Errorf("pid %d exited with %v", pid, ws)
		}
	}
	s.stop(gens[3])
}

// startSleeper starts a process that sleeps until signalled; the
// service's reaper collects it.
func startSleeper(t testing.TB) int {
	t.Helper()
	cmd := testproc.Command(t, "sleep")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	_ = cmd.Process.Release()
	return pid
}

// TestMaxDrainingReusedPID: a draining entry whose pid now belongs to
// another process (its start time differs) is dropped and never
// signalled; a matching one over the cap is killed.
func TestMaxDrainingReusedPID(t *testing.T) {
	testproc.CheckFDs(t)
	reused, old := startSleeper(t), startSleeper(t)
	t.Cleanup(func() {
		_ = syscall.Kill(reused, syscall.SIGKILL)
		_ = syscall.Kill(old, syscall.SIGKILL)
	})
	rs, _ := procStart(reused)
	st, _ := procStart(old)
	if rs == 0 || st == 0 {
		t.Fatal("no start times in /proc")
	}
	fake := fmt.Sprintf("%d:%d,%d:%d", reused, rs+1, old, st)
	s := startService(t, serviceOpts{env: []string{envMaxDraining + "=1", envFakeDraining + "=" + fake}})
	next := mustReload(t, s.gen1)
	if ws := s.waitExit(old); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("the draining process over the cap ended with %v, want SIGKILL", ws)
	}
	s.notes.waitFor(t, "the successor's STATUS=", has(next, fmt.Sprintf("force-closed draining generation 0 (pid %d): MaxDraining=1", old)))
	if !testproc.Alive(reused) {
		t.Errorf("pid %d, whose start time does not match the entry, was signalled", reused)
	}
	for _, m := range s.notes.waitFor(t, "anything", func([]message) bool { return true }) {
		if strings.Contains(m.text, fmt.Sprintf("(pid %d)", reused)) {
			t.Errorf("message %q names the reused pid", m.text)
		}
	}
	s.stop(next)
}

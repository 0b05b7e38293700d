package handoff

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/control"
	"github.com/batonhq/baton/internal/testproc"
)

// reload asks pid for an upgrade as `baton reload` does.
func reload(t *testing.T, pid int) (int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	return control.Reload(ctx, pid)
}

func mustReload(t *testing.T, pid int) int {
	t.Helper()
	next, err := reload(t, pid)
	if err != nil {
		t.Fatalf("reload of %d: %v", pid, err)
	}
	return next
}

// stop sends SIGTERM to the main process and waits for its clean exit.
func (s *service) stop(main int) {
	s.t.Helper()
	if err := syscall.Kill(main, syscall.SIGTERM); err != nil {
		s.t.Fatal(err)
	}
	if ws := s.waitExit(main); ws.ExitStatus() != 0 {
		s.t.Errorf("main %d exited with %v", main, ws)
	}
}

func TestUpgradesUnderLoad(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	upgrades := 200
	if testing.Short() {
		upgrades = 20
	}
	s := startService(t, serviceOpts{})
	main := mustReload(t, s.gen1) // the first successor, to compare fd counts with
	first := main
	s.waitExit(s.gen1)
	fds := fdCount(first)

	l := startLoad(s.addr, 4, 4)
	start := time.Now()
	for range upgrades - 1 {
		main = mustReload(t, main)
	}
	took := time.Since(start)
	l.stop()
	t.Logf("%d upgrades in %s (%.1f ms each) under load: %d requests, %d failures",
		upgrades, took.Round(time.Millisecond), float64(took.Milliseconds())/float64(upgrades-1),
		l.requests.Load(), l.failures.Load())
	if n := l.failures.Load(); n > 0 {
		t.Errorf("%d failed requests, first ones:\n%s", n, strings.Join(l.errs, "\n"))
	}
	if l.requests.Load() == 0 {
		t.Error("no request served")
	}
	if pid, err := s.get(""); err != nil || pid != main {
		t.Errorf("after the upgrades: served by %d (%v), want main %d", pid, err, main)
	}
	// The last generation holds as many fds as the second once idle.
	deadline := time.Now().Add(wait)
	for fdCount(main) != fds && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := fdCount(main); n != fds {
		t.Errorf("generation %d holds %d fds, the second held %d", upgrades+1, n, fds)
	}
	s.stop(main)
	s.notes.waitFor(t, "STOPPING=1 from the last main", has(main, "STOPPING=1"))
}

// TestNotifySequence checks every datagram the manager gets during one
// upgrade and a stop, from which process.
func TestNotifySequence(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	s := startService(t, serviceOpts{})
	old := s.gen1
	next := mustReload(t, old)
	s.waitExit(old)
	s.notes.waitFor(t, "STATUS from the successor", has(next, "STATUS=serving, generation 2"))
	s.stop(next)
	msgs := s.notes.waitFor(t, "STOPPING=1", has(next, "STOPPING=1"))

	type want struct {
		pid    int
		prefix string
	}
	wants := []want{
		{old, "READY=1\nSTATUS=serving, generation 1"},
		{old, "RELOADING=1\nMONOTONIC_USEC="},
		{old, "MAINPID=" + strconv.Itoa(next) + "\nREADY=1"},
		{old, "BARRIER=1"},
		{next, "STATUS=serving, generation 2, pid " + strconv.Itoa(next)},
		{next, "STOPPING=1"},
	}
	if len(msgs) != len(wants) {
		t.Fatalf("got %d messages, want %d: %v", len(msgs), len(wants), msgs)
	}
	for i, w := range wants {
		if msgs[i].pid != w.pid || !strings.HasPrefix(msgs[i].text, w.prefix) {
			t.Errorf("message %d = %d %q, want %d %q...", i, msgs[i].pid, msgs[i].text, w.pid, w.prefix)
		}
	}
	if m := msgs[2].text; m != "MAINPID="+strconv.Itoa(next)+"\nREADY=1" {
		t.Errorf("hand-over datagram %q carries more than MAINPID and READY", m)
	}
}

// TestGoSystemdActivation: every generation's sockets are accepted by
// go-systemd's activation package (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES).
func TestGoSystemdActivation(t *testing.T) {
	s := startService(t, serviceOpts{})
	main := s.gen1
	for range 2 {
		main = mustReload(t, main)
	}
	h, err := getHeaders("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Get("X-Activation"); got != "http" {
		t.Errorf("go-systemd activation in generation %s saw %q, want http", h.Get("X-Generation"), got)
	}
	s.stop(main)
}

func TestUnixSocketSurvives(t *testing.T) {
	testproc.CheckFDs(t)
	path := t.TempDir() + "/s.sock"
	s := startService(t, serviceOpts{env: []string{envUnix + "=" + path}})
	main := s.gen1
	for i := range 3 {
		main = mustReload(t, main)
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("after upgrade %d: %v", i+1, err)
		}
		if pid, err := unixGet(path); err != nil || pid != main {
			t.Fatalf("after upgrade %d: unix socket served by %d (%v), want %d", i+1, pid, err, main)
		}
	}
	s.stop(main)
	if _, err := os.Stat(path); err != nil {
		t.Errorf("path gone after stop: %v", err)
	}
}

// TestReloadWhileDraining: generation 1 still has a request in flight
// (blocked until the test releases it) while two more upgrades happen; the
// request then completes on generation 1.
func TestReloadWhileDraining(t *testing.T) {
	testproc.CheckFDs(t)
	s := startService(t, serviceOpts{})
	c, err := dialHTTP("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if h, err := c.do("/"); err != nil || h.Get("X-Pid") != strconv.Itoa(s.gen1) {
		t.Fatalf("first request: %v %v", h, err)
	}
	gate := t.TempDir() + "/gate"
	if err := c.send("/?wait=" + gate); err != nil {
		t.Fatal(err)
	}
	g2 := mustReload(t, s.gen1)
	g3 := mustReload(t, g2)
	if s.exited(s.gen1) {
		t.Fatal("generation 1 exited with a request in flight")
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := c.receive()
	if err != nil {
		t.Fatalf("request in flight during two upgrades: %v", err)
	}
	if h.Get("X-Pid") != strconv.Itoa(s.gen1) {
		t.Errorf("in-flight request answered with %v, want X-Pid %d", h, s.gen1)
	}
	// The connection goes idle and is closed once idle for IdleGrace.
	if _, err := c.receive(); err == nil {
		t.Error("read after the in-flight request: got a response, want EOF")
	}
	s.waitExit(s.gen1)
	s.waitExit(g2)
	s.stop(g3)
}

package handoff

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/control"
	"github.com/batonhq/baton/internal/rawhttp"
	"github.com/batonhq/baton/internal/testproc"
)

// copyExe copies the test binary to a directory of the test's own, so that
// a test can remove or replace it.
func copyExe(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "server")
	testproc.Install(t, self, dst)
	return dst
}

var successorPID = regexp.MustCompile(`\(pid (\d+)\)`)

func TestUpgradeFailures(t *testing.T) {
	tests := []struct {
		name    string
		fault   string   // one-shot fault of the successor
		env     []string // more knobs
		breakIt func(t *testing.T, exe string)
		fixIt   func(t *testing.T, exe string)
		want    []string // in the error and in STATUS=
	}{
		{
			name:    "binary missing",
			breakIt: func(t *testing.T, exe string) { _ = os.Remove(exe) },
			fixIt:   func(t *testing.T, exe string) { testproc.Install(t, mustExe(t), exe) },
			want:    []string{"start", "no such file or directory"},
		},
		{
			name: "broken new binary",
			breakIt: func(t *testing.T, exe string) {
				script := filepath.Join(t.TempDir(), "broken")
				if err := os.WriteFile(script, []byte("#!/bin/sh\necho broken >&2\nexit 3\n"), 0o755); err != nil {
					t.Fatal(err)
				}
				testproc.Install(t, script, exe)
			},
			fixIt: func(t *testing.T, exe string) { testproc.Install(t, mustExe(t), exe) },
			want:  []string{"successor exited before ready: exit status 3"},
		},
		{
			name:  "exits before ready",
			fault: "exit",
			want:  []string{"successor exited before ready: exit status 3"},
		},
		{
			name:  "not ready in time",
			fault: "hang",
			env:   []string{envReadyTimeout + "=300ms"},
			want:  []string{"not ready in time (300ms; killed: signal: killed)"},
		},
		{
			// A successor built with another release of this package,
			// one that changed the hand-over protocol.
			name:  "protocol version mismatch",
			fault: "proto",
			want:  []string{"hand-over protocol version mismatch: this generation speaks version 1, the successor version 2"},
		},
		{
			name:  "dies after ready, before hand-over",
			fault: "die-after-ready",
			want:  []string{"successor exited after ready, before hand-over: exit status 4"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			testproc.CheckFDs(t)
			testproc.CheckGoroutines(t)
			exe := copyExe(t)
			faultFile := filepath.Join(t.TempDir(), "fault")
			env := append([]string{envFault + "=" + tt.fault, envFaultFile + "=" + faultFile}, tt.env...)
			s := startService(t, serviceOpts{exe: exe, env: env})
			if tt.fault != "" {
				if err := os.WriteFile(faultFile, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if tt.breakIt != nil {
				tt.breakIt(t, exe)
			}

			l := startLoad(s.addr, 2, 2)
			_, err := reload(t, s.gen1)
			if _, gerr := s.get(""); gerr != nil {
				t.Errorf("request right after the failed upgrade: %v", gerr)
			}
			l.stop()
			t.Logf("%s: reload reported %v; %d requests, %d failures", tt.name, err, l.requests.Load(), l.failures.Load())
			if !errors.Is(err, control.ErrFailed) {
				t.Fatalf("reload = %v, want a failure", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("reload error %q does not say %q", err, w)
				}
			}
			if n := l.failures.Load(); n > 0 {
				t.Errorf("%d failed requests during the failed upgrade:\n%s", n, strings.Join(l.errs, "\n"))
			}
			// The successor, if one started, is gone (killed and reaped).
			if m := successorPID.FindStringSubmatch(err.Error()); m != nil {
				pid, _ := strconv.Atoi(m[1])
				if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
					t.Errorf("successor %d still exists: kill 0 = %v", pid, err)
				}
			}
			// The manager was told: still ready, and why the upgrade failed.
			s.notes.waitFor(t, "READY=1 with the failure", func(msgs []message) bool {
				last := msgs[len(msgs)-1]
				return last.pid == s.gen1 && strings.HasPrefix(last.text, "READY=1\nSTATUS=upgrade failed: ") &&
					strings.Contains(last.text, tt.want[0])
			})
			if pid, err := s.get(""); err != nil || pid != s.gen1 {
				t.Errorf("after the failure served by %d (%v), want %d", pid, err, s.gen1)
			}

			// The next upgrade works.
			if tt.fixIt != nil {
				tt.fixIt(t, exe)
			}
			next := mustReload(t, s.gen1)
			if tt.fixIt != nil {
				// The new file on disk runs, not the one generation 1 ran.
				var want, got syscall.Stat_t
				if err := syscall.Stat(exe, &want); err != nil {
					t.Fatal(err)
				}
				if err := syscall.Stat("/proc/"+strconv.Itoa(next)+"/exe", &got); err != nil {
					t.Fatal(err)
				}
				if want.Ino != got.Ino {
					t.Errorf("successor runs inode %d, the file on disk is %d", got.Ino, want.Ino)
				}
			}
			s.waitExit(s.gen1)
			s.stop(next)
		})
	}
}

func mustExe(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return self
}

// gated starts a service whose next successor waits for the test to
// release it; it returns the service, the file that releases it and the
// file the successor writes its pid to once started.
func gated(t *testing.T) (s *service, gate, started string) {
	t.Helper()
	dir := t.TempDir()
	gate, started = filepath.Join(dir, "gate"), filepath.Join(dir, "started")
	faultFile := filepath.Join(dir, "fault")
	s = startService(t, serviceOpts{env: []string{
		envFault + "=gate", envFaultFile + "=" + faultFile, envGate + "=" + gate, envStarted + "=" + started,
	}})
	if err := os.WriteFile(faultFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return s, gate, started
}

// waitStarted waits for the gated successor and returns its pid.
func waitStarted(t *testing.T, started string) int {
	t.Helper()
	waitFile(started)
	b, err := os.ReadFile(started)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func release(t *testing.T, gate string) {
	t.Helper()
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
}

type result struct {
	pid int
	err error
}

func reloadAsync(t *testing.T, pid int) <-chan result {
	ch := make(chan result, 1)
	go func() {
		p, err := reload(t, pid)
		ch <- result{p, err}
	}()
	return ch
}

func TestConcurrentReloadInProgress(t *testing.T) {
	checkLeaks(t)
	s, gate, started := gated(t)
	first := reloadAsync(t, s.gen1)
	succ := waitStarted(t, started)
	_, err := reload(t, s.gen1)
	if !errors.Is(err, control.ErrInProgress) {
		t.Errorf("second reload = %v, want in progress", err)
	}
	// SIGHUP during the upgrade is refused the same way (and changes
	// nothing).
	if err := syscall.Kill(s.gen1, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	release(t, gate)
	r := <-first
	if r.err != nil || r.pid != succ {
		t.Fatalf("first reload = %d, %v; want %d", r.pid, r.err, succ)
	}
	s.waitExit(s.gen1)
	s.stop(succ)
}

func TestStopDuringUpgrade(t *testing.T) {
	checkLeaks(t)
	s, _, started := gated(t)
	pending := reloadAsync(t, s.gen1)
	succ := waitStarted(t, started)
	s.stop(s.gen1)
	r := <-pending
	t.Logf("reload during stop reported: %v", r.err)
	// The control reply says "stopping": `baton reload` exits 0 for it.
	var ce *control.Error
	if !errors.As(r.err, &ce) || ce.Code != control.CodeStopping || !errors.Is(r.err, control.ErrStopping) ||
		!strings.Contains(r.err.Error(), "generation stopping") {
		t.Errorf("reload = %d, %v; want code %q: the upgrade abandoned for the stop", r.pid, r.err, control.CodeStopping)
	}
	if err := syscall.Kill(succ, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("half-started successor %d still exists: %v", succ, err)
	}
	msgs := s.notes.waitFor(t, "STOPPING=1", has(s.gen1, "STOPPING=1"))
	last := msgs[len(msgs)-1]
	if last.text != "STOPPING=1" {
		t.Errorf("last message %q, want STOPPING=1", last.text)
	}
	for _, m := range msgs {
		if strings.Contains(m.text, "MAINPID") || m.pid == succ {
			t.Errorf("unexpected message %d %q", m.pid, m.text)
		}
	}
}

// TestStopSignalsBoth: a stop under systemd signals every process of the
// cgroup, the main one first, then the successor; whichever the old
// generation notices first, the upgrade is abandoned for the stop.
func TestStopSignalsBoth(t *testing.T) {
	checkLeaks(t)
	s, gate, started := gated(t)
	pending := reloadAsync(t, s.gen1)
	succ := waitStarted(t, started)
	for _, pid := range []int{s.gen1, succ} {
		// The successor may be gone already: the main one's stop killed it.
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && (pid != succ || !errors.Is(err, syscall.ESRCH)) {
			t.Fatal(err)
		}
	}
	// Both handle SIGTERM in their signal goroutines; on a loaded machine
	// the gated successor could otherwise pass the gate, say READY and be
	// handed the main PID first (a different case: a stop after the
	// upgrade). Not a timing claim: it only orders the two events.
	time.Sleep(50 * time.Millisecond)
	release(t, gate) // a stopped successor returns from Ready and exits
	r := <-pending
	var ce *control.Error
	if !errors.As(r.err, &ce) || ce.Code != control.CodeStopping {
		t.Errorf("reload = %d, %v; want code %q", r.pid, r.err, control.CodeStopping)
	}
	if ws := s.waitExit(s.gen1); ws.ExitStatus() != 0 {
		t.Errorf("main %d exited with %v", s.gen1, ws)
	}
	if err := syscall.Kill(succ, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("successor %d still exists: %v", succ, err)
	}
}

func TestPredecessorKilledMidUpgrade(t *testing.T) {
	checkLeaks(t)
	s, gate, started := gated(t)
	pending := reloadAsync(t, s.gen1)
	succ := waitStarted(t, started)
	if err := syscall.Kill(s.gen1, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s.waitExit(s.gen1)
	if r := <-pending; r.err == nil {
		t.Errorf("reload of a killed process = %d, want an error", r.pid)
	}
	release(t, gate)
	s.notes.waitFor(t, "the successor claiming main", has(succ, "MAINPID="+strconv.Itoa(succ)+"\nREADY=1"))
	if pid, err := s.get(""); err != nil || pid != succ {
		t.Fatalf("served by %d (%v), want the successor %d", pid, err, succ)
	}
	next := mustReload(t, succ)
	s.waitExit(succ)
	s.stop(next)
}

func TestSIGHUP(t *testing.T) {
	s := startService(t, serviceOpts{})
	if err := syscall.Kill(s.gen1, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	msgs := s.notes.waitFor(t, "MAINPID", has(s.gen1, "MAINPID="))
	var next int
	for _, m := range msgs {
		if v, ok := strings.CutPrefix(m.text, "MAINPID="); ok {
			next, _ = strconv.Atoi(strings.TrimSuffix(v, "\nREADY=1"))
		}
	}
	s.waitExit(s.gen1)
	s.notes.waitFor(t, "STATUS from the successor", has(next, "STATUS=serving"))
	s.stop(next)
}

// TestSuccessorStoppedBeforeHandOver: a successor that gets SIGTERM before
// it is main declines the hand-over (or, before its handler is in place,
// is ended by the signal); the predecessor keeps serving.
func TestSuccessorStoppedBeforeHandOver(t *testing.T) {
	checkLeaks(t)
	s, gate, started := gated(t)
	pending := reloadAsync(t, s.gen1)
	succ := waitStarted(t, started)
	if err := syscall.Kill(succ, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := <-pending
	t.Logf("reload reported: %v", r.err)
	// Stopped by its handler, the successor declines (closes its
	// channel); before the handler is in place (New does not wait for it
	// in a successor: it is waited for after READY), SIGTERM's default
	// action ends it. Either way it had accepted nothing and the old
	// generation serves.
	if !errors.Is(r.err, control.ErrFailed) || !strings.Contains(r.err.Error(), "closed the hand-over channel before ready") && !strings.Contains(r.err.Error(), "successor exited before ready: signal: terminated") {
		t.Errorf("reload = %d, %v; want the successor's failure", r.pid, r.err)
	}
	release(t, gate)
	if pid, err := s.get(""); err != nil || pid != s.gen1 {
		t.Errorf("served by %d (%v), want %d", pid, err, s.gen1)
	}
	next := mustReload(t, s.gen1)
	s.waitExit(s.gen1)
	s.stop(next)
}

// TestSymlinkSwitch: started through a symbolic link, an upgrade runs what
// the link points to at that moment (a release switched by renaming a new
// link over the old one).
func TestSymlinkSwitch(t *testing.T) {
	dir := t.TempDir()
	v1, v2 := filepath.Join(dir, "v1"), filepath.Join(dir, "v2")
	testproc.Install(t, mustExe(t), v1)
	testproc.Install(t, mustExe(t), v2)
	link := filepath.Join(dir, "current")
	if err := os.Symlink(v1, link); err != nil {
		t.Fatal(err)
	}
	s := startService(t, serviceOpts{exe: link})
	g2 := mustReload(t, s.gen1)
	if got, want := inode(t, "/proc/"+strconv.Itoa(g2)+"/exe"), inode(t, v1); got != want {
		t.Errorf("generation 2 runs inode %d, want v1's %d", got, want)
	}
	if err := os.Symlink(v2, link+".new"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(link+".new", link); err != nil {
		t.Fatal(err)
	}
	g3 := mustReload(t, g2)
	if got, want := inode(t, "/proc/"+strconv.Itoa(g3)+"/exe"), inode(t, v2); got != want {
		t.Errorf("generation 3 runs inode %d, want v2's %d", got, want)
	}
	s.waitExit(s.gen1)
	s.waitExit(g2)
	s.stop(g3)
}

func inode(t *testing.T, name string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(name, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestStopRightAfterHandOver: the successor is asked to stop after it said
// READY (systemd's SIGTERM to a fresh main PID): it waits for the
// predecessor's answer, becomes main, says STOPPING=1 and exits cleanly.
func TestStopRightAfterHandOver(t *testing.T) {
	testproc.CheckFDs(t)
	faultFile := filepath.Join(t.TempDir(), "fault")
	s := startService(t, serviceOpts{env: []string{envFault + "=stop-after-ready", envFaultFile + "=" + faultFile}})
	if err := os.WriteFile(faultFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	next := mustReload(t, s.gen1)
	for _, pid := range []int{s.gen1, next} {
		if ws := s.waitExit(pid); ws.ExitStatus() != 0 {
			t.Errorf("pid %d exited with %v", pid, ws)
		}
	}
	msgs := s.notes.waitFor(t, "STOPPING=1 from the successor", has(next, "STOPPING=1"))
	for _, m := range msgs {
		if m.pid == next && m.text != "STOPPING=1" {
			t.Errorf("successor said %q", m.text)
		}
		if m.pid == s.gen1 && m.text == "STOPPING=1" {
			t.Error("the predecessor said STOPPING=1 after the hand-over")
		}
	}
}

// TestHandOverWithoutWait: a generation whose program never calls Wait
// (it kept its own signal handling) stops accepting at the hand-over all
// the same: every fresh connection after the reload reaches the
// successor. Before, the drain ran in Wait only, and the old generation
// went on taking a share of the new connections indefinitely.
func TestHandOverWithoutWait(t *testing.T) {
	faultFile := filepath.Join(t.TempDir(), "fault")
	if err := os.WriteFile(faultFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s := startService(t, serviceOpts{env: []string{envFault + "=no-wait", envFaultFile + "=" + faultFile}})
	next := mustReload(t, s.gen1)
	for i := range 20 {
		if pid, err := s.get(""); err != nil || pid != next {
			t.Errorf("fresh connection %d: answered by %d (%v), want the successor %d", i, pid, err, next)
		}
	}
	if err := syscall.Kill(s.gen1, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s.waitExit(s.gen1)
	s.stop(next)
}

// TestListenAfterReady: a successor that listens on a socket only after
// Ready (its predecessor bound it and passed it on) takes the inherited
// one while the predecessor drains, holding it too. Before, Ready closed
// the sockets not taken yet and Listen bound again: EADDRINUSE.
func TestListenAfterReady(t *testing.T) {
	late := filepath.Join(t.TempDir(), "late")
	s := startService(t, serviceOpts{env: []string{envLate + "=" + late}})
	long := make(chan error, 1)
	go func() { // holds the first generation's drain
		_, err := (&rawhttp.Client{Addr: s.addr, Timeout: wait}).Get("/?ms=3000")
		long <- err
	}()
	time.Sleep(200 * time.Millisecond) // on its way: not asserted on
	next := mustReload(t, s.gen1)
	deadline := time.Now().Add(wait)
	var got []byte
	for {
		var err error
		if got, err = os.ReadFile(late + ".result"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the successor wrote no outcome of its late Listen")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if string(got) != "ok" {
		t.Errorf("Listen after Ready in the successor: %s", got)
	}
	if err := <-long; err != nil {
		t.Errorf("the long request: %v", err)
	}
	s.waitExit(s.gen1)
	s.stop(next)
}

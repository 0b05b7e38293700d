//go:build linux

package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/control"
	"github.com/batonhq/baton/internal/testproc"
)

const reloads = 100

// upgradeUnderLoad performs reloads upgrades of s while clients hit url and
// checks that every upgrade gives a new pid and no request fails.
func upgradeUnderLoad(t *testing.T, s *Supervisor, url string) {
	t.Helper()
	l := startLoad(url, 8)
	seen := map[int]bool{s.PID(): true}
	for i := range reloads {
		l.waitRequests(20)
		pid, err := s.Upgrade(t.Context())
		if err != nil {
			l.finish(t)
			t.Fatalf("upgrade %d: %v", i+1, err)
		}
		if seen[pid] || pid != s.PID() {
			t.Errorf("upgrade %d: pid %d (serving %d) is not new", i+1, pid, s.PID())
		}
		seen[pid] = true
	}
	l.waitRequests(20)
	l.finish(t)
	if st := s.Stats(); st.Upgrades != reloads || st.Generations != reloads+1 {
		t.Errorf("stats = %+v, want %d upgrades", st, reloads)
	}
}

func TestUpgradesGoChild(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	s, _, addr, rec := newServing(t, Config{})
	upgradeUnderLoad(t, s, "http://"+addr+"/")

	states := rec.all()
	if len(states) == 0 || !strings.HasPrefix(firstWith(states, "READY=1"), "READY=1\nSTATUS=serving") {
		t.Errorf("manager got no READY=1 first: %q", states)
	}
	for _, want := range []string{"RELOADING=1\nMONOTONIC_USEC=", "WATCHDOG=1", "STATUS=serving from "} {
		if firstWith(states, want) == "" {
			t.Errorf("manager never got %q; got %q", want, states[:min(len(states), 8)])
		}
	}
	for _, st := range states {
		if strings.Contains(st, "MAINPID") {
			t.Errorf("manager got %q: the supervisor must stay the main pid", st)
		}
	}
}

func firstWith(states []string, sub string) string {
	for _, s := range states {
		if strings.Contains(s, sub) {
			return s
		}
	}
	return ""
}

func TestUpgradesCChild(t *testing.T) {
	bin := buildC(t)
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	sock, url := listen(t)
	s, err := New(Config{Args: []string{bin}, Sockets: []Socket{sock}, Drain: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	running(t, s)
	// No fd of this process reaches the child but stdio and the socket.
	// (The child's own short-lived fds, sd_notify's socket or an accepted
	// connection, are not ours.)
	mine := map[string]bool{}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if link, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil {
			mine[link] = true
		}
	}
	var sockFD uintptr // not File.Fd: it would make the shared socket blocking
	rc, err := sock.File.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	_ = rc.Control(func(fd uintptr) { sockFD = fd })
	sockLink, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", sockFD))
	ents, err = os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.PID()))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", s.PID(), e.Name()))
		fd, _ := strconv.Atoi(e.Name())
		if fd > 3 && mine[link] || fd == 3 && link != sockLink {
			t.Errorf("the C child has fd %d -> %s", fd, link)
		}
	}
	upgradeUnderLoad(t, s, url)
}

// TestChildSeesOnlyItsSockets checks that CMD gets fds 0-2 and its sockets,
// nothing else, and that go-systemd accepted LISTEN_PID (it serves).
func TestChildSeesOnlyItsSockets(t *testing.T) {
	testproc.CheckFDs(t)
	fdsFile := filepath.Join(t.TempDir(), "fds")
	_, _, addr, _ := newServing(t, Config{Env: []string{"CHILD_FDS_FILE=" + fdsFile}})
	l := startLoad("http://"+addr+"/", 1)
	l.waitRequests(1)
	l.finish(t)
	b, err := os.ReadFile(fdsFile)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); got != "0 1 2 3" {
		t.Errorf("child's open fds = %q, want \"0 1 2 3\"", got)
	}
}

func TestFailedStarts(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	tests := []struct {
		name    string
		mode    []string
		timeout time.Duration // ReadyTimeout of the broken start
		missing bool
		wantErr error
		wantMsg string
	}{
		{name: "exits", mode: []string{"exit", "7"}, wantErr: ErrExited, wantMsg: "child exited with exit status 7"},
		{name: "hangs", mode: []string{"hang"}, timeout: 300 * time.Millisecond, wantErr: ErrNotReady, wantMsg: "not ready in 300ms"},
		{name: "never ready", mode: []string{"noready"}, timeout: 300 * time.Millisecond, wantErr: ErrNotReady, wantMsg: "not ready in 300ms"},
		{name: "binary missing", missing: true, wantErr: ErrBinaryMissing, wantMsg: "binary missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, args, addr, _ := newServing(t, Config{})
			old := s.PID()
			if tt.timeout > 0 {
				s.cfg.ReadyTimeout = tt.timeout
			}
			// The next start is the broken one.
			s.cfg.Args = append(args[:len(args):len(args)], tt.mode...)
			if tt.missing {
				s.cfg.Args = []string{filepath.Join(t.TempDir(), "gone")}
			}
			l := startLoad("http://"+addr+"/", 2)
			_, err := s.Upgrade(t.Context())
			l.waitRequests(5)
			l.finish(t)
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Upgrade = %v, want %v saying %q", err, tt.wantErr, tt.wantMsg)
			}
			var se *StartError
			if !errors.As(err, &se) {
				t.Errorf("Upgrade error %T is not a *StartError", err)
			}
			// (A CMD that serves before its READY=1, like "never ready",
			// answers some requests before it is stopped.)
			if s.PID() != old || !l.pids[strconv.Itoa(old)] {
				t.Errorf("after the failed upgrade pid %d serves (answers from %v), want %d", s.PID(), l.pids, old)
			}
			if st := s.Stats(); st.FailedUpgrades != 1 {
				t.Errorf("FailedUpgrades = %d, want 1", st.FailedUpgrades)
			}
			// And the next good upgrade works.
			s.cfg.Args, s.cfg.ReadyTimeout = args, DefaultReadyTimeout
			if _, err := s.Upgrade(t.Context()); err != nil {
				t.Errorf("upgrade after the failure: %v", err)
			}
		})
	}
}

func TestFirstStartFails(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	args, env := childArgs(t, "exit", "4")
	s, err := New(Config{Args: args, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Run(t.Context())
	var se *StartError
	if !errors.As(err, &se) || se.Status == nil || se.Status.Code != 4 {
		t.Errorf("Run = %v, want a StartError with exit status 4", err)
	}
}

func TestServingChildExits(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	s, _, _, _ := newSup(t, Config{})
	done := runStarted(t, s)
	pid := s.PID()
	if err := s.Signal(os.Interrupt); err != nil { // the child does not catch SIGINT
		t.Fatal(err)
	}
	err := <-done
	var ee *ExitError
	if !errors.As(err, &ee) || ee.PID != pid || ee.Status.ShellCode() != 128+2 {
		t.Errorf("Run = %v, want pid %d killed by SIGINT (130)", err, pid)
	}
}

func TestReadyExec(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	s, _, addr, _ := newServing(t, Config{Args: []string{"noready"}, Ready: ReadyExec, ReadyTimeout: 200 * time.Millisecond})
	if _, err := s.Upgrade(t.Context()); err != nil {
		t.Errorf("upgrade of a child without READY under ReadyExec: %v", err)
	}
	l := startLoad("http://"+addr+"/", 1)
	l.waitRequests(1)
	l.finish(t)
}

func TestConcurrentUpgradeInProgress(t *testing.T) {
	testproc.CheckGoroutines(t)
	s, args, _, _ := newServing(t, Config{})
	s.cfg.Args = append(args[:len(args):len(args)], "hang")
	s.cfg.ReadyTimeout = 500 * time.Millisecond
	first := make(chan error, 1)
	go func() { _, err := s.Upgrade(t.Context()); first <- err }()
	for {
		s.mu.Lock()
		busy := s.op != ""
		s.mu.Unlock()
		if busy {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := s.Upgrade(t.Context()); !errors.Is(err, ErrInProgress) {
		t.Errorf("second Upgrade = %v, want ErrInProgress", err)
	}
	if err := <-first; !errors.Is(err, ErrNotReady) {
		t.Errorf("first Upgrade = %v, want ErrNotReady", err)
	}
}

// TestForeignNotifyIgnored sends READY=1 to the CMD's notify socket from a
// process that is not the CMD: it must not count.
func TestForeignNotifyIgnored(t *testing.T) {
	s, args, _, _ := newServing(t, Config{})
	s.cfg.Args = append(args[:len(args):len(args)], "hang")
	s.cfg.ReadyTimeout = 500 * time.Millisecond
	addr := s.notify.Socket()
	stop := make(chan struct{})
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		c, err := net.Dial("unixgram", addr)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				_, _ = c.Write([]byte("READY=1"))
			}
		}
	}()
	_, err := s.Upgrade(t.Context())
	close(stop)
	<-sent
	if !errors.Is(err, ErrNotReady) {
		t.Errorf("Upgrade = %v, want ErrNotReady (READY=1 came from the test process)", err)
	}
	if s.Stats().ForeignNotify == 0 {
		t.Error("no foreign notify message counted")
	}
}

func TestWatchReplacedBinary(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "server")
	install := func() {
		t.Helper()
		b, err := os.ReadFile(exe)
		if err != nil {
			t.Fatal(err)
		}
		tmp := bin + ".new"
		if err := os.WriteFile(tmp, b, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, bin); err != nil {
			t.Fatal(err)
		}
	}
	install()
	sock, _ := listen(t)
	args, env := childArgs(t)
	args[0] = bin
	s, err := New(Config{Args: args, Env: env, Sockets: []Socket{sock}, Watch: bin, WatchInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	running(t, s)
	old := s.PID()
	install()
	for s.Stats().Upgrades == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	if s.PID() == old {
		t.Errorf("pid %d still serving after the binary was replaced", old)
	}
}

// TestStopDuringUpgrade: a stop while a new CMD starts abandons it; Run
// returns the serving CMD's status once it has exited.
func TestStopDuringUpgrade(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	s, done, upgraded := upgradingToHang(t)
	serving := s.PID()
	for s.Stats().Generations < 2 {
		time.Sleep(time.Millisecond)
	}
	if err := s.Stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Abandoned for the stop: `baton run` answers `baton reload` with the
	// control code "stopping".
	if err := <-upgraded; !errors.Is(err, ErrStopping) || !errors.Is(err, control.ErrStopping) {
		t.Errorf("the upgrade in flight after Stop = %v, want ErrStopping", err)
	}
	var ee *ExitError
	if err := <-done; !errors.As(err, &ee) || ee.PID != serving || ee.Status.Code != 0 {
		t.Errorf("Run = %v, want pid %d's exit status 0", err, serving)
	}
	if _, err := s.Upgrade(context.Background()); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Upgrade after Run = %v, want ErrNotRunning", err)
	}
}

// TestStopAfterNewCMDDied: a stop under systemd signals the whole cgroup,
// and the new CMD may die of its SIGTERM before Stop is called: the
// upgrade is abandoned for the stop all the same, not failed.
func TestStopAfterNewCMDDied(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	s, done, upgraded := upgradingToHang(t)
	var g *child
	for g == nil {
		time.Sleep(time.Millisecond)
		s.mu.Lock()
		for _, x := range s.byPID {
			if x.n == 2 {
				g = x
			}
		}
		s.mu.Unlock()
	}
	if err := syscall.Kill(g.pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-g.done
	// Ordering only: let the upgrade see the failure before the stop (it
	// waits 500ms for one).
	time.Sleep(100 * time.Millisecond)
	if err := s.Stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-upgraded; !errors.Is(err, ErrStopping) {
		t.Errorf("the upgrade whose new CMD died of the stop = %v, want ErrStopping", err)
	}
	var ee *ExitError
	if err := <-done; !errors.As(err, &ee) || ee.Status.Code != 0 {
		t.Errorf("Run = %v, want the serving CMD's exit status 0", err)
	}
}

// upgradingToHang runs a Supervisor (runStarted) and starts an upgrade to
// a CMD that never becomes ready; upgraded gets the upgrade's outcome.
func upgradingToHang(t *testing.T) (s *Supervisor, done, upgraded <-chan error) {
	t.Helper()
	s, args, _, _ := newSup(t, Config{})
	done = runStarted(t, s)
	s.cfg.Args = append(args[:len(args):len(args)], "hang")
	up := make(chan error, 1)
	go func() { _, err := s.Upgrade(context.Background()); up <- err }()
	return s, done, up
}

// TestUpgradeDuringFirstStart: an upgrade asked for while the first CMD is
// not ready yet is refused as in progress (`baton reload` exit status 3),
// not as "supervisor not running" (a failure).
func TestUpgradeDuringFirstStart(t *testing.T) {
	testproc.CheckGoroutines(t)
	s, _, _, _ := newSup(t, Config{Args: []string{"noready"}, Ready: ReadyExec, ReadyTimeout: 300 * time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waitFor(t, "the first start", func() bool { return s.Stats().Generations == 1 })
	if _, err := s.Upgrade(t.Context()); !errors.Is(err, ErrInProgress) || !strings.Contains(err.Error(), "first start") {
		t.Errorf("Upgrade during the first start = %v, want ErrInProgress (first start)", err)
	}
	waitFor(t, "the first CMD ready", func() bool { return s.PID() != 0 })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}

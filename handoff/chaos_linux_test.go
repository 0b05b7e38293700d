package handoff

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/internal/control"
	"github.com/batonhq/baton/internal/rawhttp"
	"github.com/batonhq/baton/internal/spawn"
	"github.com/batonhq/baton/internal/testproc"
)

// The chaos run: TestChaos upgrades the "server" helper again and again
// under keep-alive and new-connection load, each upgrade with a fault
// drawn from a seeded random source.
const (
	envChaosSeed     = "BATON_CHAOS_SEED"     // replay a run: the seed it logged
	envChaosUpgrades = "BATON_CHAOS_UPGRADES" // the number of upgrades (default 250 under CI=true, 60 otherwise)
	envReport        = "BATON_E2E_REPORT"     // the summary line is appended to this file too (as e2e.Report does)
)

// The faults. Each upgrade gets one; the outcome the test requires of the
// reload (control.Reload, what `baton reload` prints and exits with) and of
// the service is given for each:
//
//   - faultNone: the reload returns the successor's pid; it serves, the old
//     generation drains and exits 0.
//   - faultKillNewStart: the successor is SIGKILLed before Ready (paused
//     at stageNewStart). The reload fails (control.ErrFailed) with
//     "successor exited before ready: signal: killed"; the old one serves.
//   - faultKillNewReady: the successor said READY (it accepts from then
//     on, beside the old generation), the old generation is paused before
//     its liveness check (stageOldReady); the successor is SIGKILLed, with
//     what it accepted, and has exited when the old one goes on. The
//     reload fails with "successor exited after ready, before hand-over:
//     signal: killed"; the old one serves.
//   - faultKillNewHandOver: the old generation paused, the successor
//     serves (SERVE), and the old one sent MAINPID= and BARRIER=1 and is
//     paused before it writes MAIN (stageOldHandOver); the successor is
//     SIGKILLed, with what it accepted. The reload fails with "successor exited during
//     hand-over: signal: killed"; the old one takes the main PID back
//     (MAINPID=<old>) and serves.
//   - faultKillNewAfter: the reload succeeded; the new main is SIGKILLed
//     at once. The reload's success was right (it did take over), but
//     nothing accepts any more: the test starts a generation 1 on the same
//     listening socket, which it holds as systemd's socket unit does, as
//     Restart=on-failure would (counted as a restart). Connections wait in
//     the backlog meanwhile; only those the killed process had accepted
//     are lost.
//   - faultKillOldStart, faultKillOldReady, faultKillOldHandOver: the old
//     generation is SIGKILLed while the successor is paused before Ready,
//     while the old one is paused before MAINPID, or after MAINPID before
//     MAIN. The reload, sent to the killed process, gets no reply
//     (control.ErrNoReply); the successor sees its hand-over channel close
//     without ABORT, claims the main PID (MAINPID=<self>, READY=1; no
//     manager here, as when started by hand) and serves.
//   - faultKillOldDrain: the reload succeeded; the old generation is
//     SIGKILLed while it drains (or is found gone already). The new one
//     serves.
//   - faultStopNew, faultStopOld: SIGSTOP of the successor or of the old
//     generation at a random stage (before Ready, before MAINPID, after
//     the hand-over), SIGCONT after a random pause of 1 to 50 ms. The
//     reload succeeds; nothing fails (the pause is far below ReadyTimeout
//     and the clients' timeout).
//   - faultStorm: 2 to 5 concurrent reloads and 1 to 3 SIGHUPs to the main
//     generation at once. Exactly one upgrade happens (one MAINPID= from
//     the old generation); at most one reload returns success, with that
//     pid; the others are refused as in progress, handed over, or find the
//     control socket closed (no server, or no reply when it closed with
//     the request in its backlog).
//
// After every upgrade, once the generations that are not main have
// exited: the processes descending from the test are the main one only
// (no orphan, no zombie), every fresh connection is answered by it, and
// its fd count, not counting client connections, equals the first steady
// value of its kind (generation 1 or successor). At the end: zero failed
// requests except those on connections a SIGKILLed process had accepted
// (counted apart: lost by construction), zero connect errors.
const (
	faultNone            = "none"
	faultKillNewStart    = "kill-new-start"
	faultKillNewReady    = "kill-new-ready"
	faultKillNewHandOver = "kill-new-handover"
	faultKillNewAfter    = "kill-new-after"
	faultKillOldStart    = "kill-old-start"
	faultKillOldReady    = "kill-old-ready"
	faultKillOldHandOver = "kill-old-handover"
	faultKillOldDrain    = "kill-old-drain"
	faultStopNew         = "stop-new"
	faultStopOld         = "stop-old"
	faultStorm           = "storm"
)

var faults = []string{
	faultNone, faultKillNewStart, faultKillNewReady, faultKillNewHandOver, faultKillNewAfter,
	faultKillOldStart, faultKillOldReady, faultKillOldHandOver, faultKillOldDrain,
	faultStopNew, faultStopOld, faultStorm,
}

func TestChaos(t *testing.T) {
	upgrades := 60
	if os.Getenv("CI") == "true" {
		upgrades = 250
	}
	if testing.Short() {
		upgrades = 24
	}
	if n, err := strconv.Atoi(os.Getenv(envChaosUpgrades)); err == nil && n > 0 {
		upgrades = n
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(envChaosSeed); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", envChaosSeed, v, err)
		}
		seed = n
	}
	t.Logf("chaos: seed %d, %d upgrades (replay: %s=%d %s=%d)", seed, upgrades, envChaosSeed, seed, envChaosUpgrades, upgrades)
	checkLeaks(t)
	rng := rand.New(rand.NewPCG(seed, seed>>32|1))

	c := startChaos(t)
	l := startChaosLoad(c.addr, 4, 4)
	t.Cleanup(l.stop) // on a failure; stop is idempotent
	start := time.Now()
	for i := range upgrades {
		kind := faults[rng.IntN(len(faults))]
		label := fmt.Sprintf("upgrade %d (%s, main %d)", i+1, kind, c.main)
		c.label, c.kind = label, kind
		l.label.Store(&label)
		c.faults[kind]++
		t0 := time.Now()
		c.upgrade(rng, kind, l)
		t1 := time.Now()
		c.settle()
		c.took[kind] += t1.Sub(t0)
		c.settleTook += time.Since(t1)
		if t.Failed() {
			t.Logf("stopping at %s (seed %d)", c.label, seed)
			break
		}
	}
	l.stop()
	took := time.Since(start)

	var kinds, times []string
	for _, k := range faults {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, c.faults[k]))
		if n := c.faults[k]; n > 0 {
			times = append(times, fmt.Sprintf("%s %s", k, (c.took[k]/time.Duration(n)).Round(time.Millisecond)))
		}
	}
	t.Logf("time per upgrade by fault (not asserted): %s; checks after each: %s",
		strings.Join(times, ", "), (c.settleTook / time.Duration(max(1, c.ok+c.failed))).Round(time.Millisecond))
	t.Logf("faults injected: %s", strings.Join(kinds, " "))
	t.Logf("upgrades: %d ok (a new generation serves), %d failed (the old one serves), %d restarts of generation 1 after the new main was killed",
		c.ok, c.failed, c.restarts)
	t.Logf("requests: %d answered, %d lost in flight on SIGKILLed processes, %d other failures, %d probes; %s",
		l.requests.Load(), l.lost.Load(), l.failures.Load(), c.probes, took.Round(time.Millisecond))
	var lostBy []string
	for _, k := range faults {
		if n := l.lostBy[k]; n > 0 {
			lostBy = append(lostBy, fmt.Sprintf("%s=%d", k, n))
		}
	}
	t.Logf("lost in flight by fault: %s; storm reloads: %s", strings.Join(lostBy, " "), c.stormOutcomes())
	for _, e := range l.lostErrs {
		t.Logf("lost (on a killed process): %s", e)
	}
	summary := fmt.Sprintf("chaos: seed=%d upgrades=%d ok=%d failed=%d restarts=%d requests=%d lost_killed=%d failures=%d faults=%s duration=%s",
		seed, c.ok+c.failed, c.ok, c.failed, c.restarts, l.requests.Load(), l.lost.Load(), l.failures.Load(),
		strings.Join(kinds, ","), took.Round(time.Millisecond))
	t.Log(summary)
	report(t, summary)
	if n := l.failures.Load(); n > 0 {
		t.Errorf("%d failed requests not on a killed process (seed %d), first ones:\n%s", n, seed, strings.Join(l.errs, "\n"))
	}
	if l.requests.Load() == 0 {
		t.Error("no request answered")
	}
	c.stopAll()
}

// report appends line to the file named by BATON_E2E_REPORT, when set.
func report(t *testing.T, line string) {
	path := os.Getenv(envReport)
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Errorf("report: %v", err)
		return
	}
	_, err = fmt.Fprintf(f, "%s: %s\n", t.Name(), line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Errorf("report: %v", err)
	}
}

// chaos is the service under test and what the test knows of its
// processes.
type chaos struct {
	t     *testing.T
	s     *service
	addr  string
	port  int
	ln    *os.File // the listening socket, held as systemd's socket unit holds it
	dir   string   // the pause directory (envPause)
	env   []string // added to generation 1's environment
	label string   // the upgrade in progress, for messages
	kind  string   // its fault

	main       int
	isGen1     bool         // main was started by the test (generation 1)
	procs      map[int]int  // pid -> pidfd of every generation the test learned of and has not accounted for
	killed     map[int]bool // pids the test SIGKILLed
	baseFDs    map[bool]int // first steady fd count (client connections not counted), by isGen1
	faults     map[string]int
	took       map[string]time.Duration // by fault
	settleTook time.Duration

	ok, failed, restarts, probes int
	storms                       map[string]int // storm reload outcomes
}

func (c *chaos) stormOutcomes() string {
	var out []string
	for _, k := range []string{"ok", "in-progress", "handed-over", "no-server", "no-reply"} {
		out = append(out, fmt.Sprintf("%s=%d", k, c.storms[k]))
	}
	return strings.Join(out, " ")
}

// startChaos starts generation 1 with env added to its environment (and
// its successors', which inherit it).
func startChaos(t *testing.T, env ...string) *chaos {
	lf, addr := testproc.ListenerFile(t)
	port, err := strconv.Atoi(addr[strings.LastIndexByte(addr, ':')+1:])
	if err != nil {
		t.Fatal(err)
	}
	c := &chaos{
		t: t, addr: addr, port: port, ln: lf, dir: t.TempDir(),
		procs: map[int]int{}, killed: map[int]bool{}, baseFDs: map[bool]int{}, faults: map[string]int{}, took: map[string]time.Duration{}, storms: map[string]int{},
		env: env,
	}
	c.s = &service{
		t: t, addr: c.addr, notes: newReceiver(t), reaped: make(chan struct{}),
		exits: map[int]unix.WaitStatus{}, exitedNow: make(chan struct{}),
	}
	stop := make(chan struct{})
	go c.reap(stop)
	t.Cleanup(func() {
		close(stop)
		c.s.cleanup()
		for _, fd := range c.procs {
			_ = unix.Close(fd)
		}
		_ = lf.Close()
	})
	c.startGen1()
	c.settle()
	return c
}

// reap is service.reap, except that it goes on when no child is left
// (between a kill and a restart) until stop is closed.
func (c *chaos) reap(stop chan struct{}) {
	s := c.s
	defer close(s.reaped)
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ECHILD):
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			continue
		case err != nil:
			panic(err)
		}
		s.mu.Lock()
		s.exits[pid] = ws
		close(s.exitedNow)
		s.exitedNow = make(chan struct{})
		s.mu.Unlock()
	}
}

// mark returns the number of sd_notify messages received so far.
func (c *chaos) mark() int {
	c.s.notes.mu.Lock()
	defer c.s.notes.mu.Unlock()
	return len(c.s.notes.msgs)
}

// waitNote waits for a message from pid containing text, received after
// mark, and returns the messages since mark.
func (c *chaos) waitNote(mark, pid int, text string) []message {
	c.t.Helper()
	msgs := c.s.notes.waitFor(c.t, fmt.Sprintf("%q from %d (%s)", text, pid, c.label), func(msgs []message) bool {
		return has(pid, text)(msgs[mark:])
	})
	return msgs[mark:]
}

// startGen1 starts a generation 1 on the held socket, as the manager does
// (at the start, and to restart the service), and makes it main.
func (c *chaos) startGen1() {
	t := c.t
	cmd := testproc.Command(t, "server")
	env := append(cmd.Env, "NOTIFY_SOCKET="+c.s.notes.path, envPause+"="+c.dir)
	env = append(env, c.env...)
	p, err := spawn.Start(&spawn.Config{
		Path: cmd.Path, Args: cmd.Args, Env: env,
		Files: []*os.File{c.ln}, Names: []string{"http"},
		Stdout: os.Stderr, Stderr: os.Stderr, Mode: spawn.SelfFix,
	})
	if err != nil {
		t.Fatal(err)
	}
	pid := p.Pid
	_ = p.Release() // the reaper (c.reap) collects it
	c.track(pid)
	c.s.notes.waitFor(t, "READY=1 from a generation 1", has(pid, "READY=1"))
	c.main, c.isGen1 = pid, true
}

// track opens a pidfd for pid (alive: the test learned of it from the
// process itself or from its parent, which has not reaped it).
func (c *chaos) track(pid int) {
	if _, ok := c.procs[pid]; ok {
		return
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		c.t.Fatalf("%s: pidfd of %d: %v", c.label, pid, err)
	}
	c.procs[pid] = fd
	// The pid is alive now: an exit the test reaped under it before was
	// another process's (pids are reused over hundreds of upgrades).
	c.s.forget(pid)
}

func (c *chaos) signal(pid int, sig unix.Signal) error {
	fd, ok := c.procs[pid]
	if !ok {
		c.t.Fatalf("%s: signal %v to untracked pid %d", c.label, sig, pid)
	}
	return unix.PidfdSendSignal(fd, sig, nil, 0)
}

// gone reports whether pid has exited, waiting up to d.
func (c *chaos) gone(pid int, d time.Duration) bool {
	fds := []unix.PollFd{{Fd: int32(c.procs[pid]), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(d/time.Millisecond))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err == nil && n > 0
	}
}

func (c *chaos) waitGone(pid int) {
	c.t.Helper()
	if !c.gone(pid, wait) {
		c.t.Fatalf("%s: pid %d did not exit", c.label, pid)
	}
}

// stopProcess sends SIGSTOP and waits until every thread of pid is
// stopped.
func (c *chaos) stopProcess(pid int) {
	c.t.Helper()
	if err := c.signal(pid, unix.SIGSTOP); err != nil {
		c.t.Fatalf("%s: SIGSTOP %d: %v", c.label, pid, err)
	}
	deadline := time.Now().Add(wait)
	for !allStopped(pid) {
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: pid %d not stopped", c.label, pid)
		}
		time.Sleep(time.Millisecond)
	}
}

func allStopped(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			return false
		}
		_, rest, _ := strings.Cut(string(b), ") ")
		if !strings.HasPrefix(rest, "T") && !strings.HasPrefix(rest, "t") {
			return false
		}
	}
	return true
}

// kill SIGKILLs pid. A process that may have accepted connections is
// stopped first, so that the client ports of the connections it holds can
// be read while its fd table cannot change; requests that fail on them are
// counted as lost by construction. It returns false when pid had exited
// already (nothing was killed). conns is the number of client connections
// pid held.
func (c *chaos) kill(pid int, l *chaosLoad) (killed bool, conns int) {
	c.t.Helper()
	if c.gone(pid, 0) {
		return false, 0
	}
	if err := c.signal(pid, unix.SIGSTOP); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return false, 0
		}
		c.t.Fatalf("%s: SIGSTOP %d: %v", c.label, pid, err)
	}
	deadline := time.Now().Add(wait)
	for !allStopped(pid) {
		if c.gone(pid, 0) {
			return false, 0 // exited before it stopped
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: pid %d not stopped", c.label, pid)
		}
		time.Sleep(time.Millisecond)
	}
	ports := c.clientPorts(pid)
	l.markLost(c.kind, ports)
	if err := c.signal(pid, unix.SIGKILL); err != nil {
		c.t.Fatalf("%s: SIGKILL %d: %v", c.label, pid, err)
	}
	c.killed[pid] = true
	return true, len(ports)
}

// killSuccessor kills a successor that has not been handed the main PID.
// Before READY (serving false) it has not accepted a connection; after
// (early accept: it accepts from READY on, before the main PID moves)
// what it accepted is lost with it, as on any killed process.
func (c *chaos) killSuccessor(pid int, l *chaosLoad, serving bool) {
	c.t.Helper()
	killed, conns := c.kill(pid, l)
	if !killed {
		c.t.Fatalf("%s: the paused successor %d had exited", c.label, pid)
	}
	if conns != 0 && !serving {
		c.t.Errorf("%s: successor %d held %d client connections before the hand-over", c.label, pid, conns)
	}
}

// clientPorts returns the client (remote) ports of the TCP connections to
// port that pid holds open.
func (c *chaos) clientPorts(pid int) []int {
	var ports []int
	c.eachSocket(pid, func(fd int) {
		local, err := unix.Getsockname(fd)
		if sa, ok := local.(*unix.SockaddrInet4); err != nil || !ok || sa.Port != c.port {
			return
		}
		if peer, err := unix.Getpeername(fd); err == nil {
			if sa, ok := peer.(*unix.SockaddrInet4); ok {
				ports = append(ports, sa.Port)
			}
		}
	})
	return ports
}

// eachSocket calls f with a copy (pidfd_getfd) of each socket pid holds.
// (Reading /proc/PID/net/tcp instead would cost a line per socket in
// TIME_WAIT: tens of thousands under this load.)
func (c *chaos) eachSocket(pid int, f func(fd int)) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil || !strings.HasPrefix(target, "socket:[") {
			continue
		}
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		fd, err := unix.PidfdGetfd(c.procs[pid], n, 0)
		if err != nil {
			if !errors.Is(err, unix.EBADF) { // closed meanwhile
				c.t.Errorf("%s: pidfd_getfd %d of %d: %v", c.label, n, pid, err)
			}
			continue
		}
		f(fd)
		_ = unix.Close(fd)
	}
}

// steadyFDs counts pid's open fds except its client connections and its
// pidfds (fdCount: they watch other processes for a while): every fd but
// the sockets, plus the listening and the non-TCP sockets.
func (c *chaos) steadyFDs(pid int) int {
	all := fdCount(pid)
	if all < 0 {
		return -1
	}
	conns := 0
	c.eachSocket(pid, func(fd int) {
		domain, err1 := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
		listening, err2 := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
		if err1 == nil && err2 == nil && domain == unix.AF_INET && listening == 0 {
			conns++
		}
	})
	return all - conns
}

// pause is what the test finds in the pause directory's "at" file.
type pause struct {
	pid, successor int
	stage          string
}

// pauseNext makes the process that next reaches stage pause there.
func (c *chaos) pauseNext(stage string) {
	_ = os.Remove(filepath.Join(c.dir, "at"))
	if err := writeFileAtomic(filepath.Join(c.dir, "pause"), []byte(stage)); err != nil {
		c.t.Fatal(err)
	}
}

// waitPause waits until a process paused at stage, and tracks it and the
// successor it names.
func (c *chaos) waitPause(stage string) pause {
	c.t.Helper()
	name := filepath.Join(c.dir, "at")
	deadline := time.Now().Add(wait)
	for {
		b, err := os.ReadFile(name)
		if err == nil {
			var p pause
			if _, err := fmt.Sscanf(string(b), "%d %s %d", &p.pid, &p.stage, &p.successor); err != nil || p.stage != stage {
				c.t.Fatalf("%s: paused %q, want stage %s (%v)", c.label, b, stage, err)
			}
			_ = os.Remove(name)
			c.track(p.pid)
			if p.successor != 0 {
				c.track(p.successor)
			}
			return p
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: nothing paused at %s", c.label, stage)
		}
		time.Sleep(time.Millisecond)
	}
}

func (c *chaos) resume(pid int) {
	if err := os.WriteFile(filepath.Join(c.dir, "go."+strconv.Itoa(pid)), nil, 0o600); err != nil {
		c.t.Fatal(err)
	}
}

// expectFailed checks that a reload failed as an upgrade failure saying
// want, and that the old generation goes on as main.
func (c *chaos) expectFailed(r result, want string) {
	c.t.Helper()
	if !errors.Is(r.err, control.ErrFailed) || !strings.Contains(r.err.Error(), want) {
		c.t.Errorf("%s: reload = %d, %v; want a failure saying %q", c.label, r.pid, r.err, want)
	}
	c.failed++
}

// expectOK checks that a reload succeeded and makes its pid main.
func (c *chaos) expectOK(r result) int {
	c.t.Helper()
	if r.err != nil || r.pid <= 0 {
		c.t.Fatalf("%s: reload = %d, %v; want success", c.label, r.pid, r.err)
	}
	c.track(r.pid)
	c.newMain(r.pid)
	return r.pid
}

// expectClaimed checks that a reload sent to a killed main got no reply
// and that succ claimed the main PID.
func (c *chaos) expectClaimed(r result, succ, mark int) {
	c.t.Helper()
	if !errors.Is(r.err, control.ErrNoReply) {
		c.t.Errorf("%s: reload of the killed main = %d, %v; want no reply", c.label, r.pid, r.err)
	}
	c.waitNote(mark, succ, "MAINPID="+strconv.Itoa(succ)+"\nREADY=1")
	c.newMain(succ)
}

func (c *chaos) newMain(pid int) {
	c.main, c.isGen1 = pid, false
	c.ok++
}

// pauseFor is the random SIGSTOP length.
func pauseFor(rng *rand.Rand) time.Duration {
	return time.Duration(1+rng.IntN(50)) * time.Millisecond
}

// upgrade runs one upgrade of the main generation with fault kind.
func (c *chaos) upgrade(rng *rand.Rand, kind string, l *chaosLoad) {
	t := c.t
	old := c.main
	mark := c.mark()
	switch kind {
	case faultNone:
		c.expectOK(reloadResult(t, old))

	case faultKillNewStart:
		c.pauseNext(stageNewStart)
		pending := reloadAsync(t, old)
		p := c.waitPause(stageNewStart)
		c.killSuccessor(p.pid, l, false)
		c.expectFailed(<-pending, "successor exited before ready: signal: killed")
		c.waitGone(p.pid)

	case faultKillNewReady, faultKillNewHandOver:
		stage, want := stageOldReady, "successor exited after ready, before hand-over: signal: killed"
		if kind == faultKillNewHandOver {
			stage, want = stageOldHandOver, "successor exited during hand-over: signal: killed"
		}
		c.pauseNext(stage)
		pending := reloadAsync(t, old)
		p := c.waitPause(stage)
		c.killSuccessor(p.successor, l, true) // it accepts from READY on
		c.waitGone(p.successor)               // before the old generation goes on
		c.resume(old)
		c.expectFailed(<-pending, want)
		if kind == faultKillNewHandOver {
			c.waitNote(mark, old, "MAINPID="+strconv.Itoa(old))
		}

	case faultKillNewAfter:
		next := c.expectOK(reloadResult(t, old))
		if killed, _ := c.kill(next, l); killed {
			c.waitGone(next)
			c.startGen1()
			c.restarts++
		} else {
			t.Errorf("%s: the new main %d exited by itself", c.label, next)
		}

	case faultKillOldStart:
		c.pauseNext(stageNewStart)
		pending := reloadAsync(t, old)
		p := c.waitPause(stageNewStart)
		c.kill(old, l)
		c.waitGone(old)
		c.resume(p.pid)
		c.expectClaimed(<-pending, p.pid, mark)

	case faultKillOldReady, faultKillOldHandOver:
		stage := stageOldReady
		if kind == faultKillOldHandOver {
			stage = stageOldHandOver
		}
		c.pauseNext(stage)
		pending := reloadAsync(t, old)
		p := c.waitPause(stage)
		c.kill(old, l)
		c.expectClaimed(<-pending, p.successor, mark)

	case faultKillOldDrain:
		c.expectOK(reloadResult(t, old))
		c.kill(old, l) // false when it had drained already

	case faultStopNew, faultStopOld:
		c.stopAndContinue(rng, kind == faultStopNew)

	case faultStorm:
		c.storm(rng)
	}
}

// stopAndContinue stops the successor (ofNew) or the old generation at a
// random stage for a random pause; the upgrade succeeds.
func (c *chaos) stopAndContinue(rng *rand.Rand, ofNew bool) {
	t := c.t
	old := c.main
	d := pauseFor(rng)
	switch rng.IntN(3) {
	case 0: // the successor before Ready
		c.pauseNext(stageNewStart)
		pending := reloadAsync(t, old)
		p := c.waitPause(stageNewStart)
		victim := old
		if ofNew {
			victim = p.pid
		}
		c.stopProcess(victim)
		c.resume(p.pid)
		time.Sleep(d)
		_ = c.signal(victim, unix.SIGCONT)
		c.expectOK(<-pending)
	case 1: // the old generation before MAINPID
		c.pauseNext(stageOldReady)
		pending := reloadAsync(t, old)
		p := c.waitPause(stageOldReady)
		victim := old
		if ofNew {
			victim = p.successor
		}
		c.stopProcess(victim)
		c.resume(old)
		time.Sleep(d)
		_ = c.signal(victim, unix.SIGCONT)
		c.expectOK(<-pending)
	default: // after the hand-over: the new main serving, the old draining
		next := c.expectOK(reloadResult(t, old))
		victim := old
		if ofNew {
			victim = next
		}
		if err := c.signal(victim, unix.SIGSTOP); err == nil {
			time.Sleep(d)
			_ = c.signal(victim, unix.SIGCONT)
		} else if ofNew || !errors.Is(err, unix.ESRCH) {
			t.Errorf("%s: SIGSTOP %d: %v", c.label, victim, err)
		}
	}
}

// storm sends concurrent reloads and SIGHUPs to the main generation.
func (c *chaos) storm(rng *rand.Rand) {
	t := c.t
	old := c.main
	reloads, hups := 2+rng.IntN(4), 1+rng.IntN(3)
	mark := c.mark()
	var wg sync.WaitGroup
	results := make([]result, reloads)
	start := make(chan struct{})
	for i := range reloads {
		wg.Go(func() {
			<-start
			p, err := reload(t, old)
			results[i] = result{p, err}
		})
	}
	for range hups {
		wg.Go(func() {
			<-start
			_ = c.signal(old, unix.SIGHUP) // ESRCH: it has drained already
		})
	}
	close(start)
	wg.Wait()
	// The one upgrade: the old generation's MAINPID=.
	msgs := c.waitNote(mark, old, "MAINPID=")
	next := 0
	for _, m := range msgs {
		if v, ok := strings.CutPrefix(m.text, "MAINPID="); ok && m.pid == old {
			if next != 0 {
				t.Errorf("%s: more than one MAINPID= from %d: %v", c.label, old, msgs)
			}
			next, _ = strconv.Atoi(strings.TrimSuffix(v, "\nREADY=1"))
		}
	}
	ok := 0
	for _, r := range results {
		var ce *control.Error
		switch {
		case r.err == nil:
			ok++
			c.storms["ok"]++
			if r.pid != next {
				t.Errorf("%s: reload returned %d, the hand-over went to %d", c.label, r.pid, next)
			}
		case errors.Is(r.err, control.ErrInProgress):
			c.storms["in-progress"]++
		case errors.As(r.err, &ce) && ce.Code == control.CodeFailed && strings.Contains(r.err.Error(), "already handed over"):
			c.storms["handed-over"]++
		case errors.Is(r.err, control.ErrNoServer):
			c.storms["no-server"]++
		case errors.Is(r.err, control.ErrNoReply):
			c.storms["no-reply"]++
		default:
			t.Errorf("%s: storm reload = %d, %v", c.label, r.pid, r.err)
		}
	}
	if ok > 1 {
		t.Errorf("%s: %d reloads succeeded: %v", c.label, ok, results)
	}
	if next == 0 {
		t.Fatalf("%s: no hand-over", c.label)
	}
	c.track(next)
	c.newMain(next)
}

func reloadResult(t *testing.T, pid int) result {
	p, err := reload(t, pid)
	return result{p, err}
}

// settle waits until every generation but the main one has exited and is
// accounted for, then checks the service: only the main generation runs
// (no orphan), it answers every fresh connection, its fd count is flat.
func (c *chaos) settle() {
	t := c.t
	t.Helper()
	for pid := range c.procs {
		if pid != c.main {
			c.waitGone(pid)
		}
	}
	if c.gone(c.main, 0) {
		t.Fatalf("%s: main %d has exited", c.label, c.main)
	}
	// No orphan: the test's descendants are the main generation only
	// (draining ones have exited, zombies are reaped, by the test or, for
	// a successor that failed, by its predecessor).
	deadline := time.Now().Add(wait)
	for {
		d := descendants(os.Getpid())
		if len(d) == 1 && d[0] == c.main {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: processes under the test: %v, want the main %d only", c.label, d, c.main)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for pid, fd := range c.procs {
		if pid == c.main {
			continue
		}
		if c.s.exited(pid) { // reaped by the test: its status
			ws := c.s.waitExit(pid)
			switch {
			case c.killed[pid]:
				if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
					t.Errorf("%s: killed pid %d ended with %v", c.label, pid, ws)
				}
			case !ws.Exited() || ws.ExitStatus() != 0:
				t.Errorf("%s: pid %d ended with %v, want exit status 0", c.label, pid, ws)
			}
		}
		_ = unix.Close(fd)
		delete(c.procs, pid)
		delete(c.killed, pid)
	}
	// One generation serving: fresh connections all reach the main one.
	for range 3 {
		c.probes++
		h, err := (&rawhttp.Client{Addr: c.addr, Timeout: wait}).Get("/")
		if pid, _ := strconv.Atoi(h.Get("X-Pid")); err != nil || pid != c.main {
			t.Errorf("%s: served by %d (%v), want main %d", c.label, pid, err, c.main)
		}
	}
	// Flat fd count, by kind of generation.
	base, ok := c.baseFDs[c.isGen1]
	if !ok {
		c.baseFDs[c.isGen1] = c.steadyFDs(c.main)
		return
	}
	deadline = time.Now().Add(wait)
	for n := c.steadyFDs(c.main); n != base; n = c.steadyFDs(c.main) {
		if time.Now().After(deadline) {
			t.Errorf("%s: main %d holds %d fds besides client connections, the first steady value was %d: %s",
				c.label, c.main, n, base, fdList(c.main))
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func fdList(pid int) string {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		target, _ := os.Readlink(filepath.Join(dir, e.Name()))
		out = append(out, e.Name()+"->"+target)
	}
	return strings.Join(out, " ")
}

// descendants lists the processes below pid, zombies included.
func descendants(pid int) []int {
	var out []int
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, task := range tasks {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, task.Name()))
		for _, f := range strings.Fields(string(b)) {
			if child, err := strconv.Atoi(f); err == nil {
				out = append(out, child)
				out = append(out, descendants(child)...)
			}
		}
	}
	return out
}

// stopAll stops the main generation; it exits 0.
func (c *chaos) stopAll() {
	if err := c.signal(c.main, unix.SIGTERM); err != nil {
		c.t.Fatal(err)
	}
	if ws := c.s.waitExit(c.main); ws.ExitStatus() != 0 {
		c.t.Errorf("main %d exited with %v", c.main, ws)
	}
}

// chaosLoad drives requests at the service as load does, and tells the
// requests lost on a connection a SIGKILLed process had accepted from the
// other failures: a kill records the client ports of the connections the
// stopped process held (markLost), with a sequence number; a request that
// fails on a connection whose port was recorded by a kill after the
// connection was dialed is lost by construction. (At any moment a client
// port belongs to one open connection to the service, so a recorded port
// names the connection that was open on it; the ports are read from
// established sockets only.) Connect errors are always failures: the
// socket is never closed, so nothing may be refused.
type chaosLoad struct {
	requests, lost, failures atomic.Int64
	label                    atomic.Pointer[string]

	killSeq   atomic.Int64
	mu        sync.Mutex
	lostPorts map[int]lostMark // client port -> the kill that recorded it
	lostBy    map[string]int64 // lost requests by the fault of the kill
	errs      []string
	lostErrs  []string

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startChaosLoad(addr string, keepAlive, fresh int) *chaosLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &chaosLoad{cancel: cancel, lostPorts: map[int]lostMark{}, lostBy: map[string]int64{}}
	l.label.Store(new(string))
	for i := range keepAlive + fresh {
		l.wg.Go(func() { l.client(ctx, addr, i < keepAlive, i) })
	}
	return l
}

// stop stops the clients and waits for them; again, it does nothing.
func (l *chaosLoad) stop() {
	l.cancel()
	l.wg.Wait()
}

// lostMark is a kill that recorded a client port: its sequence number and
// its fault.
type lostMark struct {
	seq  int64
	kind string
}

func (l *chaosLoad) markLost(kind string, ports []int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	seq := l.killSeq.Add(1)
	for _, p := range ports {
		l.lostPorts[p] = lostMark{seq, kind}
	}
}

// fail counts a failed request on the connection with client port port,
// dialed when the kill sequence was dialSeq (port 0: no connection).
func (l *chaosLoad) fail(port int, dialSeq int64, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	msg := fmt.Sprintf("%s: %v", *l.label.Load(), err)
	if m, ok := l.lostPorts[port]; ok && port != 0 && m.seq > dialSeq {
		l.lost.Add(1)
		l.lostBy[m.kind]++
		if len(l.lostErrs) < 5 {
			l.lostErrs = append(l.lostErrs, msg)
		}
		return
	}
	l.failures.Add(1)
	if len(l.errs) < 20 {
		l.errs = append(l.errs, msg)
	}
}

func (l *chaosLoad) client(ctx context.Context, addr string, keepAlive bool, n int) {
	var c net.Conn
	var br *bufio.Reader
	var port int
	var dialSeq int64
	dialer := net.Dialer{Timeout: wait}
	closeConn := func() {
		if c != nil {
			_ = c.Close()
			c = nil
		}
	}
	defer closeConn()
	for i := 0; ctx.Err() == nil; i++ {
		if c == nil {
			dialSeq = l.killSeq.Load()
			var err error
			c, err = dialer.DialContext(ctx, "tcp", addr)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				l.fail(0, dialSeq, fmt.Errorf("dial: %w", err))
				c = nil
				continue
			}
			port = c.LocalAddr().(*net.TCPAddr).Port
			br = bufio.NewReader(c)
		}
		// Every 16th request is slow, so that kills and hand-overs find
		// requests in flight.
		q := "/"
		if (i+n)%16 == 0 {
			q = "/?ms=" + strconv.Itoa(1+(i+n)%20)
		}
		req := "GET " + q + " HTTP/1.1\r\nHost: t\r\n"
		if !keepAlive {
			req += "Connection: close\r\n"
		}
		_ = c.SetDeadline(time.Now().Add(wait))
		if _, err := io.WriteString(c, req+"\r\n"); err != nil {
			l.fail(port, dialSeq, fmt.Errorf("write on %s: %w", c.LocalAddr(), err))
			closeConn()
			continue
		}
		resp, err := http.ReadResponse(br, nil)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if err == nil && resp.StatusCode != http.StatusOK {
				// An answer is never lost: any status but 200 is a failure.
				l.fail(0, dialSeq, fmt.Errorf("request %d on %s: status %s", i, c.LocalAddr(), resp.Status))
				closeConn()
				continue
			}
		}
		if err != nil {
			l.fail(port, dialSeq, fmt.Errorf("request %d on %s: %w", i, c.LocalAddr(), err))
			closeConn()
			continue
		}
		l.requests.Add(1)
		if resp.Close || !keepAlive {
			closeConn()
		}
	}
}

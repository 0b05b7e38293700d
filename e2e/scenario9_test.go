//go:build linux

package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Scenario 9's faults, one per `systemctl reload`, drawn from a seeded
// random source (BATON_CHAOS_SEED replays a run; BATON_CHAOS_UPGRADES
// sets the count, default 50). The outcome required of each:
//
//   - chaosNone: the reload succeeds, MainPID is the successor.
//   - chaosKillNew: the successor, found while the reload runs and stopped
//     (SIGSTOP) while it is not MainPID and holds no client connection, is
//     SIGKILLed. Either the old generation sees it die before MAINPID: the
//     reload fails, MainPID stays, no restart; or the old one had sent
//     MAINPID= already (the package's trap "a successor that dies after
//     the manager accepted its MAINPID"): systemd sees its main process
//     killed and restarts the service (NRestarts+1). Both are accepted and
//     counted; no request fails either way (the successor never accepted
//     one, the old one drains on systemd's SIGTERM, new connections wait in
//     the socket unit's backlog).
//   - chaosKillOld: the main process is SIGKILLed once its successor runs.
//     Under NotifyAccess=main systemd acts on the main process's death:
//     the unit restarts (NRestarts+1, a fresh generation on the socket
//     unit's socket) and the reload fails. Requests on the connections the
//     killed process held are lost by construction (LoadResult.Lost).
//   - chaosStopNew, chaosStopOld: SIGSTOP of the successor (or, when the
//     upgrade was over before it was seen, of the new main) or of the old
//     generation for 1 to 50 ms, then SIGCONT. The reload succeeds.
//   - chaosStorm: 2 to 4 concurrent `systemctl reload`s. systemd runs them
//     one after the other (a reload job waiting merges the later ones):
//     every one succeeds, MainPID changes, no restart.
//
// After each: the unit is active and running, the processes in its cgroup
// are MainPID only once the old generations drained, and a new connection
// is served by MainPID.
const (
	chaosNone    = "none"
	chaosKillNew = "kill-new"
	chaosKillOld = "kill-old"
	chaosStopNew = "stop-new"
	chaosStopOld = "stop-old"
	chaosStorm   = "storm"
)

var chaosFaults = []string{chaosNone, chaosKillNew, chaosKillOld, chaosStopNew, chaosStopOld, chaosStorm}

// TestScenario9Chaos: 50 reloads of the hardened units from `baton units`
// for examples/http under keep-alive and new-connection load, each with a
// random fault (chaosFaults).
func TestScenario9Chaos(t *testing.T) {
	upgrades := 50
	if n, err := strconv.Atoi(os.Getenv("BATON_CHAOS_UPGRADES")); err == nil && n > 0 {
		upgrades = n
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("BATON_CHAOS_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("BATON_CHAOS_SEED=%q: %v", v, err)
		}
		seed = n
	}
	t.Logf("scenario 9: seed %d (replay: BATON_CHAOS_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed>>32|1))

	p := buildProduct(t)
	box := boxWithProduct(t, Config{})
	units := p.httpUnits(t, "s9")
	// Restarts after kills, some in quick succession: above the default
	// start limit (5 in 10 s).
	dropIn(units, "s9.service", "[Unit]\nStartLimitBurst=1000\n")
	install(t, box, units)
	box.Systemctl("start", "s9-http.socket")
	c := &chaosRun{t: t, box: box, unit: "s9.service", exe: p.http, outcomes: map[string]int{}, faults: map[string]int{}}

	start := time.Now()
	c.load = box.StartLoad(t.Context(), LoadConfig{URL: httpURL, MaxDuration: 30 * time.Minute})
	c.load.WaitRequests(100) // the first request starts the service
	c.mains = []int{box.MainPID(c.unit)}
	for i := range upgrades {
		kind := chaosFaults[rng.IntN(len(chaosFaults))]
		c.label = fmt.Sprintf("reload %d (%s, main %d)", i+1, kind, c.main())
		c.faults[kind]++
		c.upgrade(rng, kind)
		c.settle()
		if t.Failed() {
			t.Logf("stopping at %s (seed %d)", c.label, seed)
			break
		}
		c.load.WaitRequests(20) // load runs across every reload
	}
	res := c.load.Stop()

	var kinds, outcomes []string
	for _, k := range chaosFaults {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, c.faults[k]))
	}
	for k, n := range c.outcomes {
		outcomes = append(outcomes, fmt.Sprintf("%s=%d", k, n))
	}
	slices.Sort(outcomes)
	restarts, _ := strconv.Atoi(box.Show(c.unit, "NRestarts")["NRestarts"])
	Report(t, "scenario 9: %s seed=%d requests=%d failed=%d lost_killed=%d reloads=%d restarts=%d faults=%s outcomes=%s duration=%v failures=%v",
		Machine(t), seed, res.Requests, res.Failed, res.Lost, c.reloads, restarts, strings.Join(kinds, ","), strings.Join(outcomes, ","),
		time.Since(start).Round(time.Millisecond), res.Failures)
	if res.Failed != 0 {
		t.Errorf("scenario 9: %d of %d requests failed (not counting %d on killed processes): %v", res.Failed, res.Requests, res.Lost, res.Samples)
	}
	if res.Requests == 0 {
		t.Error("scenario 9: no request made")
	}
	if restarts != c.outcomes["kill-old: restarted"]+c.outcomes["kill-new: restarted"] {
		t.Errorf("NRestarts=%d, want one per restart outcome: %v", restarts, c.outcomes)
	}
	// Every answer came from a generation that served: one systemd had as
	// MainPID after a reload, or one that logged "serving" (the
	// intermediate mains of a storm, a successor that claimed main when
	// its predecessor was killed, until systemd's stop reached it).
	served := slices.Clone(c.mains)
	for line := range strings.Lines(box.Journal(c.unit)) {
		if _, after, ok := strings.Cut(line, "msg=serving generation="); ok {
			if _, v, ok := strings.Cut(after, " pid="); ok {
				if pid, err := strconv.Atoi(strings.Fields(v)[0]); err == nil {
					served = append(served, pid)
				}
			}
		}
	}
	for pid, n := range res.Pids {
		if !slices.Contains(served, pid) {
			t.Errorf("%d responses from pid %d, which never served (MainPIDs %v)", n, pid, c.mains)
		}
	}
	// A killed main process, the rejected claim of its successor and the
	// failed reloads are what systemd reports for the kills; nothing else.
	var allowed []string
	if restarts > 0 {
		allowed = append(allowed, "Main process exited, code=", "Failed with result",
			"Got notification message from PID", "reception only permitted for main PID")
	}
	if restarts > 0 || c.outcomes["kill-new: reload failed"] > 0 {
		allowed = append(allowed, "Reload failed")
	}
	checkJournal(t, box, c.unit, allowed...)
}

type chaosRun struct {
	t     *testing.T
	box   *Box
	unit  string
	exe   string // examples/http
	load  *Load
	label string

	mains    []int // every MainPID, in order
	reloads  int
	faults   map[string]int
	outcomes map[string]int
}

func (c *chaosRun) main() int { return c.mains[len(c.mains)-1] }

// show returns MainPID and NRestarts.
func (c *chaosRun) show() (main, restarts int) {
	p := c.box.Show(c.unit, "MainPID", "NRestarts")
	main, _ = strconv.Atoi(p["MainPID"])
	restarts, _ = strconv.Atoi(p["NRestarts"])
	return main, restarts
}

// reload runs `systemctl reload` in the background.
func (c *chaosRun) reload() <-chan error {
	c.reloads++
	ch := make(chan error, 1)
	go func() {
		ctx, cancel := c.box.context()
		defer cancel()
		_, err := c.box.Exec(ctx, "systemctl", "reload", c.unit)
		ch <- err
	}()
	return ch
}

// successor waits for a server process other than old (in the box's pid
// namespace) while the reload runs; 0 when the reload ended first.
func (c *chaosRun) successor(old int, done <-chan error) (int, error, bool) {
	for {
		for pid, cmdline := range c.box.Processes() {
			if pid != old && strings.HasPrefix(cmdline, c.exe+" ") && !slices.Contains(c.mains, pid) {
				return pid, nil, false
			}
		}
		select {
		case err := <-done:
			return 0, err, true
		case <-time.After(time.Millisecond):
		}
	}
}

// signal sends sig to pid (in the box's pid namespace) through its /proc
// directory, which cannot name another process once pid is reused.
func (c *chaosRun) signal(pid int, sig unix.Signal) error {
	fd, err := unix.Open(filepath.Join(c.box.Root(), "proc", strconv.Itoa(pid)), unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.PidfdSendSignal(fd, sig, nil, 0)
}

// stop sends SIGSTOP and waits until every thread of pid is stopped; false
// when pid exited first.
func (c *chaosRun) stop(pid int) bool {
	if err := c.signal(pid, unix.SIGSTOP); err != nil {
		return false
	}
	task := filepath.Join(c.box.Root(), "proc", strconv.Itoa(pid), "task")
	deadline := time.Now().Add(time.Minute)
	for {
		tasks, err := os.ReadDir(task)
		if err != nil || len(tasks) == 0 {
			return false
		}
		stopped := true
		for _, e := range tasks {
			b, err := os.ReadFile(filepath.Join(task, e.Name(), "stat"))
			if err != nil {
				return false
			}
			_, rest, _ := strings.Cut(string(b), ") ")
			if !strings.HasPrefix(rest, "T") && !strings.HasPrefix(rest, "t") {
				stopped = false
			}
		}
		if stopped {
			return true
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: pid %d not stopped", c.label, pid)
		}
		time.Sleep(time.Millisecond)
	}
}

// clientPorts returns the client ports of the TCP connections that pid
// (stopped) holds: its sockets found established in the box's network
// namespace, where the socket unit's listener and so the accepted
// connections live.
func (c *chaosRun) clientPorts(pid int) []int {
	dir := filepath.Join(c.box.Root(), "proc", strconv.Itoa(pid), "fd")
	ents, _ := os.ReadDir(dir)
	inodes := map[string]bool{}
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if ino, ok := strings.CutPrefix(target, "socket:["); err == nil && ok {
			inodes[strings.TrimSuffix(ino, "]")] = true
		}
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp", c.box.PID()))
	var ports []int
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 10 || f[3] != "01" || !inodes[f[9]] || !strings.HasSuffix(f[1], ":1F90") { // 8080
			continue
		}
		_, hex, _ := strings.Cut(f[2], ":")
		if n, err := strconv.ParseUint(hex, 16, 16); err == nil {
			ports = append(ports, int(n))
		}
	}
	return ports
}

func (c *chaosRun) upgrade(rng *rand.Rand, kind string) {
	t := c.t
	old := c.main()
	_, restarts := c.show()
	switch kind {
	case chaosNone:
		if err := <-c.reload(); err != nil {
			t.Errorf("%s: %v", c.label, err)
		}
		c.expectNewMain(old, restarts)

	case chaosKillNew:
		done := c.reload()
		succ, err, ended := c.successor(old, done)
		if ended {
			c.outcome("kill-new: upgrade over first")
			if err != nil {
				t.Errorf("%s: %v", c.label, err)
			}
			c.expectNewMain(old, restarts)
			return
		}
		killed := false
		if c.stop(succ) {
			if main, _ := c.show(); main != succ && len(c.clientPorts(succ)) == 0 {
				killed = c.signal(succ, unix.SIGKILL) == nil
			}
			if !killed {
				_ = c.signal(succ, unix.SIGCONT)
			}
		}
		err = <-done
		switch {
		case !killed:
			c.outcome("kill-new: main already")
			if err != nil {
				t.Errorf("%s: %v", c.label, err)
			}
			c.expectNewMain(old, restarts)
		case err != nil:
			t.Logf("%s: reload failed as it should: %v", c.label, err)
			if main, r := c.show(); main == old && r == restarts {
				c.outcome("kill-new: reload failed")
				c.mains = append(c.mains, old)
			} else {
				// MAINPID=<successor> had reached systemd.
				c.outcome("kill-new: restarted")
				c.expectRestart(restarts)
			}
		default:
			// The hand-over was complete (MAINPID, MAIN) when the kill came:
			// systemd restarts the killed main.
			c.outcome("kill-new: restarted")
			c.expectRestart(restarts)
		}

	case chaosKillOld:
		done := c.reload()
		succ, err, ended := c.successor(old, done)
		if ended {
			c.outcome("kill-old: upgrade over first")
			if err != nil {
				t.Errorf("%s: %v", c.label, err)
			}
			c.expectNewMain(old, restarts)
			return
		}
		mainAtKill := 0
		if c.stop(old) {
			mainAtKill, _ = c.show()
			c.load.MarkLost(c.clientPorts(old))
			if err := c.signal(old, unix.SIGKILL); err != nil {
				t.Fatalf("%s: SIGKILL: %v", c.label, err)
			}
		}
		err = <-done
		if c.waitSettled(old, restarts) {
			c.outcome("kill-old: restarted")
			if err == nil {
				t.Errorf("%s: the reload succeeded, its main process was killed", c.label)
			}
			if mainAtKill != old {
				t.Errorf("%s: restarted, but MainPID was %d when %d was killed", c.label, mainAtKill, old)
			}
			c.expectRestart(restarts)
			return
		}
		// MAINPID= reached systemd before the kill: the old generation was
		// draining (the reload succeeded), or was killed between MAINPID=
		// and MAIN (the successor claims main, which it is already; the
		// reload gets no reply).
		if err == nil {
			c.outcome("kill-old: while draining")
		} else {
			c.outcome("kill-old: after MAINPID, reload failed")
		}
		if main, _ := c.show(); main != succ {
			t.Errorf("%s: MainPID %d, want the successor %d", c.label, main, succ)
		}
		c.expectNewMain(old, restarts)

	case chaosStopNew, chaosStopOld:
		done := c.reload()
		victim := old
		if kind == chaosStopNew {
			succ, err, ended := c.successor(old, done)
			if ended {
				if err != nil {
					t.Errorf("%s: %v", c.label, err)
				}
				succ, _ = c.show()
				done = nil
			}
			victim = succ
		}
		if c.stop(victim) {
			time.Sleep(time.Duration(1+rng.IntN(50)) * time.Millisecond)
			_ = c.signal(victim, unix.SIGCONT)
		}
		if done != nil {
			if err := <-done; err != nil {
				t.Errorf("%s: %v", c.label, err)
			}
		}
		c.expectNewMain(old, restarts)

	case chaosStorm:
		n := 2 + rng.IntN(3)
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			ch := c.reload()
			wg.Go(func() { errs[i] = <-ch })
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Errorf("%s: %v", c.label, err)
			}
		}
		c.expectNewMain(old, restarts)
	}
}

func (c *chaosRun) outcome(what string) { c.outcomes[what]++ }

// waitSettled waits until systemd has dealt with a kill of the main
// process old: it reports whether the unit restarted (NRestarts moved
// past restarts), or false once it runs a MainPID other than old, alive,
// without a restart.
func (c *chaosRun) waitSettled(old, restarts int) bool {
	c.t.Helper()
	var restarted bool
	deadline := time.Now().Add(time.Minute)
	waitFor(c.t, c.label+": systemd to see the kill", func() bool {
		p := c.box.Show(c.unit, "NRestarts", "ActiveState", "SubState", "MainPID")
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: after the kill: %v", c.label, p)
		}
		if p["NRestarts"] != strconv.Itoa(restarts) {
			restarted = true
			return true
		}
		main, _ := strconv.Atoi(p["MainPID"])
		if main == 0 || main == old || p["ActiveState"] != "active" || p["SubState"] != "running" {
			return false
		}
		_, err := os.Stat(filepath.Join(c.box.Root(), "proc", strconv.Itoa(main)))
		return err == nil
	})
	return restarted
}

// expectNewMain checks that MainPID moved from old without a restart.
func (c *chaosRun) expectNewMain(old, restarts int) {
	c.t.Helper()
	main, r := c.show()
	if main == old || main == 0 || r != restarts {
		c.t.Errorf("%s: MainPID=%d NRestarts=%d, want a new main and %d restarts", c.label, main, r, restarts)
	}
	c.mains = append(c.mains, main)
}

// expectRestart waits for the unit to have restarted once more.
func (c *chaosRun) expectRestart(restarts int) {
	c.t.Helper()
	deadline := time.Now().Add(time.Minute)
	waitFor(c.t, c.label+": the restart", func() bool {
		p := c.box.Show(c.unit, "NRestarts", "ActiveState", "SubState", "MainPID")
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: no restart a minute after the kill: %v", c.label, p)
		}
		return p["NRestarts"] == strconv.Itoa(restarts+1) && p["ActiveState"] == "active" && p["SubState"] == "running" && p["MainPID"] != "0"
	})
	main, _ := c.show()
	c.mains = append(c.mains, main)
}

// settle waits until the unit's only process is MainPID (the old
// generations drained and exited), then checks that MainPID serves.
func (c *chaosRun) settle() {
	t := c.t
	t.Helper()
	main := c.main()
	deadline := time.Now().Add(time.Minute)
	waitFor(t, c.label+": the old generations to exit", func() bool {
		p := c.box.Show(c.unit, "ActiveState", "SubState", "MainPID")
		if p["ActiveState"] != "active" || p["SubState"] != "running" || p["MainPID"] != strconv.Itoa(main) {
			t.Fatalf("%s: %s %v, want active/running with MainPID %d", c.label, c.unit, p, main)
		}
		var servers []int
		for pid, cmdline := range c.box.Processes() {
			if strings.HasPrefix(cmdline, c.exe+" ") {
				servers = append(servers, pid)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: server processes %v a minute after the reload, want MainPID %d only", c.label, servers, main)
		}
		return len(servers) == 1 && servers[0] == main
	})
	if got := probe(t, c.box); got != main {
		t.Errorf("%s: a new connection is served by %d, want MainPID %d", c.label, got, main)
	}
}

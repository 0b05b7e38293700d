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

// watchWindow is scenario 10's Config.WatchWindow (examples/http
// -watch-window).
const watchWindow = 1500 * time.Millisecond

// TestScenario10WatchWindow: the hardened units from `baton units` for
// examples/http -watch-window, on systemd 252 (Type=notify) and 254
// (Type=notify-reload), under keep-alive and new-connection load. On 252
// `systemctl reload` returns at the cut-over with MainPID unchanged; on
// 254 the units come from `baton units --watch-window` and it returns at
// the window's end (ExecReload=baton reload --wait-window), failing on a
// rollback. Either the successor is SIGKILLed at a random moment of its
// window (the old generation serves again, MainPID never moves, no
// restart) or the window passes (MainPID moves to the successor, the old
// one exits). A
// sampler reads MainPID throughout: no value it sees is a killed
// successor, and every one is alive when read. No request fails but those
// in flight on a killed process's connections.
func TestScenario10WatchWindow(t *testing.T) {
	rounds := 12
	if n, err := strconv.Atoi(os.Getenv("BATON_WATCH_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	p := buildProduct(t)
	forReleases(t, func(t *testing.T, rel Release) {
		v := strconv.Itoa(rel.Version)
		extra := []string{}
		// Type=notify-reload with ExecReload=baton reload --wait-window
		// from 253 on. On 262 a reload job that gets a second READY=1
		// while ExecReload= runs is never ended ("Reload operation timed
		// out"): the handoff sends READY=1 at the cut-over and MAINPID=
		// alone at the window's end.
		waitWindow := rel.NotifyReload()
		if waitWindow {
			extra = append(extra, "--systemd-version", v, "--watch-window", watchWindow.String())
		}
		box := boxWithProduct(t, rel.Config(Config{}))
		args := append([]string{
			"--name", "s10",
			"--exec", fmt.Sprintf("%s -listen 127.0.0.1:8080 -watch-window %s", p.http, watchWindow),
			"--listen", "http=tcp://127.0.0.1:8080",
		}, extra...)
		install(t, box, p.units(t, args...))
		box.Systemctl("start", "s10-http.socket")
		watchScenario(t, box, p.http, v, rel.Rounds(rounds), waitWindow)
	})
}

func watchScenario(t *testing.T, box *Box, exe, version string, rounds int, waitWindow bool) {
	const unit = "s10.service"
	c := &chaosRun{t: t, box: box, unit: unit, exe: exe, outcomes: map[string]int{}, faults: map[string]int{}}
	start := time.Now()
	c.load = box.StartLoad(t.Context(), LoadConfig{URL: httpURL})
	c.load.WaitRequests(100)
	c.mains = []int{box.MainPID(unit)}

	s := startMainSampler(box, unit)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 10))
	var killed []int
	var rollback []time.Duration
	for i := range rounds {
		old := c.main()
		kill := rng.IntN(3) != 0 // two in three die in their window
		c.label = fmt.Sprintf("systemd %s, reload %d (kill %v, main %d)", version, i+1, kill, old)
		begun := time.Now()
		done := c.reload()
		if !waitWindow {
			if err := <-done; err != nil {
				t.Fatalf("%s: systemctl reload: %v", c.label, err)
			}
		}
		// Alive for its window at least: found whether or not the reload
		// has returned.
		succ := c.newServer(old, killed)
		if !waitWindow {
			// Returned at the cut-over: the successor serves, old is main.
			if m := box.MainPID(unit); m != old {
				t.Errorf("%s: MainPID %d right after the reload, want %d until the window passes", c.label, m, old)
			}
		}
		var ports []int
		if kill {
			if waitWindow {
				// The reload runs on: the cut-over is in StatusText.
				waitFor(t, c.label+": the cut-over", func() bool {
					return strings.Contains(box.Show(unit, "StatusText")["StatusText"], fmt.Sprintf("pid %d, watched until", succ))
				})
			}
			ports, kill = c.stopInWindow(rng, succ, begun)
		}
		if !kill {
			if waitWindow {
				if err := <-done; err != nil {
					t.Fatalf("%s: systemctl reload: %v", c.label, err)
				}
				// Returned at the window's end: the successor is main.
				if m := box.MainPID(unit); m != succ {
					t.Errorf("%s: MainPID %d right after the reload, want the successor %d", c.label, m, succ)
				}
			}
			waitFor(t, c.label+": MainPID to move after the window", func() bool { return box.MainPID(unit) == succ })
			c.mains = append(c.mains, succ)
			c.outcome("window passed")
			c.settle()
			continue
		}
		c.load.MarkLost(ports)
		if err := c.signal(succ, unix.SIGKILL); err != nil {
			t.Fatalf("%s: SIGKILL %d: %v", c.label, succ, err)
		}
		gone := time.Now()
		killed = append(killed, succ)
		got := probeUntil(t, box, func(pid int) bool { return pid == old })
		if got != old {
			t.Fatalf("%s: served by %d after the kill, want %d", c.label, got, old)
		}
		rollback = append(rollback, time.Since(gone))
		if waitWindow {
			if err := <-done; err == nil {
				t.Errorf("%s: systemctl reload succeeded, want it to fail: the successor was rolled back", c.label)
			}
		}
		waitFor(t, c.label+": the rollback's StatusText", func() bool {
			return strings.Contains(box.Show(unit, "StatusText")["StatusText"], fmt.Sprintf("(pid %d): successor exited: signal: killed", succ))
		})
		c.outcome("rolled back")
		c.settle()
		c.load.WaitRequests(20)
	}
	res := c.load.Stop()
	seen := s.stop()
	props := box.Show(unit, "NRestarts", "ActiveState", "SubState")
	Report(t, "scenario 10: systemd=%s requests=%d failed=%d lost_killed=%d reloads=%d wait_window=%v rolled_back=%d window_passed=%d kills_skipped=%d restarts=%s mainpids_seen=%d duration=%v failures=%v",
		version, res.Requests, res.Failed, res.Lost, c.reloads, waitWindow, c.outcomes["rolled back"], c.outcomes["window passed"], c.outcomes["kill too late, skipped"],
		props["NRestarts"], len(seen), time.Since(start).Round(time.Millisecond), res.Failures)
	if res.Failed != 0 {
		t.Errorf("%d of %d requests failed (not counting %d on killed successors): %v", res.Failed, res.Requests, res.Lost, res.Samples)
	}
	if props["NRestarts"] != "0" || props["ActiveState"] != "active" || props["SubState"] != "running" {
		t.Errorf("after the reloads: %v, want active/running and no restart", props)
	}
	for _, m := range seen {
		if slices.Contains(killed, m.pid) {
			t.Errorf("MainPID was %d, a successor killed in its window", m.pid)
		}
		if !m.alive {
			t.Errorf("MainPID %d was not a running process when read", m.pid)
		}
	}
	for _, m := range seen {
		if !slices.Contains(c.mains, m.pid) {
			t.Errorf("MainPID %d was never a generation that served", m.pid)
		}
	}
	if len(rollback) > 0 {
		slices.Sort(rollback)
		t.Logf("systemd %s: kill of the successor -> a new connection served by the old generation: median %v, max %v (probe included)",
			version, rollback[len(rollback)/2], rollback[len(rollback)-1])
	}
	checkServedBy(t, box, res, append(slices.Clone(killed), c.mains...)) // the last is MainPID
	if waitWindow {
		// One "Reload failed" per rollback, and no other error.
		checkJournal(t, box, unit, "Reload failed")
		if n := strings.Count(box.Journal(unit), "Reload failed for"); n != c.outcomes["rolled back"] {
			t.Errorf("journal: %d failed reloads, want one per rollback (%d)", n, c.outcomes["rolled back"])
		}
	} else {
		checkJournal(t, box, unit)
	}
}

// newServer waits for a server process that is neither old nor one seen
// before (a MainPID, or killed).
func (c *chaosRun) newServer(old int, killed []int) int {
	c.t.Helper()
	var pid int
	waitFor(c.t, c.label+": the successor", func() bool {
		for p, cmdline := range c.box.Processes() {
			if p != old && strings.HasPrefix(cmdline, c.exe+" ") && !slices.Contains(c.mains, p) && !slices.Contains(killed, p) {
				pid = p
				return true
			}
		}
		return false
	})
	return pid
}

// mainSample is one MainPID the sampler read, and whether a process with
// that pid was running (not a zombie) right after.
type mainSample struct {
	pid   int
	alive bool
}

type mainSampler struct {
	stopc chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	seen  []mainSample
}

// startMainSampler reads unit's MainPID over and over until stop.
func startMainSampler(box *Box, unit string) *mainSampler {
	s := &mainSampler{stopc: make(chan struct{})}
	s.wg.Go(func() {
		last := -1
		for {
			select {
			case <-s.stopc:
				return
			default:
			}
			pid := box.MainPID(unit)
			if pid != last && pid != 0 {
				s.mu.Lock()
				s.seen = append(s.seen, mainSample{pid: pid, alive: running(box, pid)})
				s.mu.Unlock()
				last = pid
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	return s
}

func (s *mainSampler) stop() []mainSample {
	close(s.stopc)
	s.wg.Wait()
	return s.seen
}

// running reports whether pid (in the box's pid namespace) is a process
// that is not a zombie.
func running(box *Box, pid int) bool {
	b, err := os.ReadFile(filepath.Join(box.Root(), "proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z") && !strings.HasPrefix(rest, "X")
}

// killMargin is how much of a watch window must be left, counted from the
// `systemctl reload` (the cut-over comes later), for a kill in it: a kill
// seen after the window's end would be the serving process's exit, not a
// rollback.
const killMargin = 250 * time.Millisecond

// stopInWindow waits a random part of a watch window, stops pid (SIGSTOP)
// and returns the client ports of its connections. It continues pid and
// returns false instead when less than killMargin of the window, which
// began no sooner than begun, would be left for the kill.
func (c *chaosRun) stopInWindow(rng *rand.Rand, pid int, begun time.Time) ([]int, bool) {
	time.Sleep(time.Duration(rng.Int64N(int64(watchWindow * 6 / 10))))
	if !c.stop(pid) {
		c.t.Fatalf("%s: pid %d gone before the kill", c.label, pid)
	}
	// Reading the box's TCP table takes long with many sockets in
	// TIME_WAIT: the time is checked after it.
	ports := c.clientPorts(pid)
	if time.Since(begun) > watchWindow-killMargin {
		_ = c.signal(pid, unix.SIGCONT)
		c.outcome("kill too late, skipped")
		return nil, false
	}
	return ports, true
}

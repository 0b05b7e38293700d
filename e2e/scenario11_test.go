//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Scenario 11's pool: `baton run --workers poolWorkers --max-surge
// poolSurge`.
const (
	poolWorkers = 3
	poolSurge   = 1
)

// TestScenario11BatonRunPoolWindow: `baton run` as ExecStart= of a unit
// whose socket comes from a socket unit, around e2e/internal/sdserver (a
// go-systemd server that knows nothing of baton), on systemd 252
// (Type=notify, ExecReload=baton reload) and 254 (Type=notify-reload with
// a ReloadSignal= baton ignores, and the same ExecReload=, as `baton
// units` writes them), under keep-alive and new-connection load:
//
//   - pool: --workers 3 --max-surge 1; each `systemctl reload` replaces
//     every worker (baton status), a sampler of the box's processes never
//     sees more than 3+1 children at once, and a worker killed (SIGKILL)
//     outside a reload is started again (restarts 1 in baton status);
//   - window: --watch-window; the new child is SIGKILLed at a random
//     moment of its window (the old one serves on alone, baton status says
//     rolled-back) or the window passes (the old one exits after it). On
//     252 `systemctl reload` returns at the cut-over (baton reload); on 254
//     at the window's end (baton reload --wait-window), failing on each
//     rollback.
//
// In both, MainPID is baton's throughout (sampled), the unit never
// restarts, and no request fails but those in flight on a killed child's
// connections (counted apart). BATON_POOL_RELOADS (default 20) and
// BATON_WATCH_ROUNDS (default 12) set the counts.
func TestScenario11BatonRunPoolWindow(t *testing.T) {
	reloads, rounds := 20, 12
	if n, err := strconv.Atoi(os.Getenv("BATON_POOL_RELOADS")); err == nil && n > 0 {
		reloads = n
	}
	if n, err := strconv.Atoi(os.Getenv("BATON_WATCH_ROUNDS")); err == nil && n > 1 {
		rounds = n
	}
	baton := Build(t, "./cmd/baton")
	child := Build(t, "./e2e/internal/sdserver")
	forReleases(t, func(t *testing.T, rel Release) {
		t.Run("pool", func(t *testing.T) {
			r := bootRun(t, rel, baton, child,
				fmt.Sprintf("--workers %d --max-surge %d --listen http -- %s", poolWorkers, poolSurge, child), "")
			r.pool(rel.Rounds(reloads))
		})
		t.Run("window", func(t *testing.T) {
			waitWindow := rel.NotifyReload()
			reload := ""
			if waitWindow {
				reload = "--wait-window "
			}
			r := bootRun(t, rel, baton, child,
				fmt.Sprintf("--watch-window %s --listen http -- %s", watchWindow, child), reload)
			r.window(rel.Rounds(rounds), waitWindow)
		})
	})
}

// runScenario is scenario 11 in one box: s11.service runs baton run.
type runScenario struct {
	*chaosRun
	version  string
	baton    string // the binary
	batonPID int    // baton run's pid, the unit's MainPID
	served   []int  // every child seen serving in baton status
}

// bootRun boots a box with systemd version, installs s11.socket and
// s11.service (ExecStart=baton run RUN, ExecReload=baton reload RELOAD
// --pid $MAINPID), starts them and returns once baton's READY=1 came.
func bootRun(t *testing.T, rel Release, baton, child, run, reload string) *runScenario {
	t.Helper()
	version := strconv.Itoa(rel.Version)
	box := boxWithProduct(t, rel.Config(Config{}))
	// With Type=notify-reload systemd signals the main process and runs
	// ExecReload=: baton run would take SIGHUP for a second upgrade, so
	// the signal is one it ignores.
	typ := "Type=notify\n"
	if rel.NotifyReload() {
		typ = "Type=notify-reload\nReloadSignal=SIGWINCH\n"
	}
	box.InstallText(map[string]string{
		"s11.socket": "[Socket]\nListenStream=127.0.0.1:8080\nFileDescriptorName=http\n",
		"s11.service": `[Unit]
Requires=s11.socket
After=s11.socket

[Service]
` + typ + `NotifyAccess=main
ExecStart=` + baton + ` run ` + run + `
ExecReload=` + baton + ` reload ` + reload + `--pid $MAINPID
KillMode=mixed
`,
	})
	const unit = "s11.service"
	if want := strings.Fields(typ)[0]; "Type="+box.Show(unit, "Type")["Type"] != want {
		t.Fatalf("%s: Type=%s, want %s", unit, box.Show(unit, "Type")["Type"], want)
	}
	box.Systemctl("start", "s11.socket", unit)
	r := &runScenario{
		chaosRun: &chaosRun{t: t, box: box, unit: unit, exe: child, outcomes: map[string]int{}, faults: map[string]int{}},
		version:  version,
		baton:    baton,
		batonPID: box.MainPID(unit),
	}
	r.label = "after the start"
	return r
}

// batonRunStatus is what scenario 11 reads of `baton status --json` for
// baton run.
type batonRunStatus struct {
	Children []struct {
		PID        int    `json:"pid"`
		Generation int    `json:"generation"`
		State      string `json:"state"`
		Worker     int    `json:"worker"`
		Version    int    `json:"version"`
		Restarts   int    `json:"restarts"`
	} `json:"children"`
	Pool *struct {
		Workers      int `json:"workers"`
		MaxSurge     int `json:"max_surge"`
		Peak         int `json:"peak"`
		PeakServing  int `json:"peak_serving"`
		WorkerExits  int `json:"worker_exits"`
		Restarts     int `json:"restarts"`
		FailedStarts int `json:"failed_starts"`
	} `json:"pool"`
	Upgrades []struct {
		Generation int    `json:"generation"`
		PID        int    `json:"pid"`
		Outcome    string `json:"outcome"`
		Reason     string `json:"reason"`
	} `json:"upgrades"`
	Counters struct {
		UpgradesOK         int `json:"upgrades_ok"`
		UpgradesFailed     int `json:"upgrades_failed"`
		UpgradesRolledBack int `json:"upgrades_rolled_back"`
	} `json:"counters"`
}

// serving returns the pids of the children in state serving, by worker.
func (st *batonRunStatus) serving() []int {
	var pids []int
	for _, ch := range st.Children {
		if ch.State == "serving" {
			pids = append(pids, ch.PID)
		}
	}
	return pids
}

// lastUpgrade returns the outcome and the new pid of the last upgrade
// (empty before the first).
func (st *batonRunStatus) lastUpgrade() (string, int) {
	if len(st.Upgrades) == 0 {
		return "", 0
	}
	u := st.Upgrades[len(st.Upgrades)-1]
	return u.Outcome, u.PID
}

// status runs `baton status --json` in the box and notes the serving
// children.
func (r *runScenario) status() *batonRunStatus {
	r.t.Helper()
	out := r.box.Run(r.baton, "status", "--json", "--pid", strconv.Itoa(r.batonPID))
	var st batonRunStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		r.t.Fatalf("%s: baton status --json: %v\n%s", r.label, err, out)
	}
	for _, pid := range st.serving() {
		if !slices.Contains(r.served, pid) {
			r.served = append(r.served, pid)
		}
	}
	return &st
}

// checkUnit fails the test unless the unit is active and running with
// baton as its main process and no restart.
func (r *runScenario) checkUnit() {
	r.t.Helper()
	p := r.box.Show(r.unit, "MainPID", "ActiveState", "SubState", "NRestarts")
	if p["ActiveState"] != "active" || p["SubState"] != "running" || p["NRestarts"] != "0" || p["MainPID"] != strconv.Itoa(r.batonPID) {
		r.t.Fatalf("%s: %s %v, want active/running, MainPID %d (baton run), no restart", r.label, r.unit, p, r.batonPID)
	}
}

// checkEnd checks what a part's run left: every response came from a child
// that served (or was killed), MainPID was baton's whenever read, and the
// journal has no notify error but the allowed ones.
func (r *runScenario) checkEnd(res LoadResult, mains []mainSample, killed []int, allowed ...string) {
	t := r.t
	t.Helper()
	if res.Failed != 0 {
		t.Errorf("%d of %d requests failed (not counting %d on killed children): %v", res.Failed, res.Requests, res.Lost, res.Samples)
	}
	if res.Requests == 0 {
		t.Error("no request made")
	}
	for pid, n := range res.Pids {
		if !slices.Contains(r.served, pid) && !slices.Contains(killed, pid) {
			t.Errorf("%d responses from pid %d, never a serving child (%v)", n, pid, r.served)
		}
	}
	for _, m := range mains {
		if m.pid != r.batonPID || !m.alive {
			t.Errorf("MainPID %d (running: %v), want baton run (%d) throughout", m.pid, m.alive, r.batonPID)
		}
	}
	r.label = "at the end"
	r.checkUnit()
	checkJournal(t, r.box, r.unit, allowed...)
}

// pool is the pool part: reloads rolling upgrades, and one SIGKILL of a
// worker halfway.
func (r *runScenario) pool(reloads int) {
	t := r.t
	st := r.status()
	if len(st.serving()) != poolWorkers || st.Pool == nil {
		t.Fatalf("after the start: serving %v, pool %v; want %d workers", st.serving(), st.Pool, poolWorkers)
	}
	start := time.Now()
	children := startChildSampler(r.box, r.exe)
	mains := startMainSampler(r.box, r.unit)
	r.load = r.box.StartLoad(t.Context(), LoadConfig{URL: httpURL})
	r.load.WaitRequests(100)
	var killed []int
	version := 0
	for i := range reloads {
		if i == reloads/2 {
			killed = append(killed, r.killWorker(st))
			st = r.status()
		}
		before := st.serving()
		r.label = fmt.Sprintf("systemd %s, pool reload %d (workers %v)", r.version, i+1, before)
		if err := <-r.reload(); err != nil {
			t.Fatalf("%s: systemctl reload: %v", r.label, err)
		}
		st = r.status()
		after := st.serving()
		if len(after) != poolWorkers {
			t.Fatalf("%s: serving %v right after the reload, want %d workers", r.label, after, poolWorkers)
		}
		for _, ch := range st.Children {
			if ch.State != "serving" {
				continue
			}
			if slices.Contains(before, ch.PID) {
				t.Errorf("%s: worker %d (pid %d) not replaced", r.label, ch.Worker, ch.PID)
			}
			if ch.Version != version+1 {
				t.Errorf("%s: worker %d (pid %d) runs version %d, want %d", r.label, ch.Worker, ch.PID, ch.Version, version+1)
			}
		}
		if got := statusPIDs(r.box.Show(r.unit, "StatusText")["StatusText"]); !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(after))) {
			t.Errorf("%s: StatusText lists pids %v, want the serving workers %v", r.label, got, after)
		}
		if o, _ := st.lastUpgrade(); o != "ok" {
			t.Errorf("%s: last upgrade %q, want ok", r.label, o)
		}
		version++
		r.checkUnit()
		r.load.WaitRequests(20)
	}
	r.label = "the last reload's old workers"
	waitFor(t, r.label+" to exit", func() bool { return len(children.pass()) == poolWorkers })
	res := r.load.Stop()
	most, at := children.stop()
	seen := mains.stop()
	st = r.status()
	props := r.box.Show(r.unit, "NRestarts")
	Report(t, "scenario 11: systemd=%s part=pool requests=%d failed=%d lost_killed=%d reloads=%d workers=%d max_surge=%d most_children=%d status_peak=%d status_peak_serving=%d worker_exits=%d worker_restarts=%d failed_starts=%d restarts=%s mainpids_seen=%d duration=%v failures=%v",
		r.version, res.Requests, res.Failed, res.Lost, r.reloads, poolWorkers, poolSurge, most, st.Pool.Peak, st.Pool.PeakServing,
		st.Pool.WorkerExits, st.Pool.Restarts, st.Pool.FailedStarts, props["NRestarts"], len(seen),
		time.Since(start).Round(time.Millisecond), res.Failures)
	// --max-surge bounds the workers serving or starting; old workers
	// still draining do not hold the roll-out back, so the processes seen
	// at once (most, at) may be more.
	t.Logf("most children at once: %d %v", most, at)
	if most < poolWorkers {
		t.Errorf("the process sampler saw %d children at most, want %d or more: it sees nothing", most, poolWorkers)
	}
	if p := st.Pool; p.PeakServing > poolWorkers+poolSurge || p.PeakServing < poolWorkers || p.WorkerExits != 1 || p.Restarts != 1 || p.FailedStarts != 0 {
		t.Errorf("baton status: pool %+v, want a peak of %d to %d serving or starting and one exit and restart", *p, poolWorkers, poolWorkers+poolSurge)
	}
	if o := st.Counters; o.UpgradesOK != reloads || o.UpgradesFailed != 0 {
		t.Errorf("baton status: counters %+v, want %d upgrades, none failed", o, reloads)
	}
	r.checkEnd(res, seen, killed)
}

// killWorker SIGKILLs one of the serving workers of st outside an upgrade
// and waits until baton has started it again; it returns the killed pid.
func (r *runScenario) killWorker(st *batonRunStatus) int {
	t := r.t
	t.Helper()
	victim, worker := st.serving()[1], 0
	for _, ch := range st.Children {
		if ch.PID == victim {
			worker = ch.Worker
		}
	}
	r.label = fmt.Sprintf("systemd %s, kill -9 of worker pid %d", r.version, victim)
	if !r.stop(victim) {
		t.Fatalf("%s: gone before the kill", r.label)
	}
	r.load.MarkLost(r.clientPorts(victim))
	if err := r.signal(victim, unix.SIGKILL); err != nil {
		t.Fatalf("%s: %v", r.label, err)
	}
	waitFor(t, r.label+": its restart", func() bool {
		st := r.status()
		return st.Pool.Restarts == 1 && len(st.serving()) == poolWorkers && !slices.Contains(st.serving(), victim)
	})
	st = r.status()
	if p := st.Pool; p.WorkerExits != 1 || p.FailedStarts != 0 {
		t.Errorf("%s: pool %+v, want one exit", r.label, *p)
	}
	restarted, fresh := 0, 0
	for _, ch := range st.Children {
		if ch.State == "serving" {
			restarted += ch.Restarts
		}
		if ch.State == "serving" && ch.Worker == worker {
			fresh = ch.PID
		}
	}
	if restarted != 1 || fresh == 0 {
		t.Errorf("%s: the serving workers' restarts add up to %d, want 1 (worker %d): %+v", r.label, restarted, worker, st.Children)
	}
	// systemctl status shows the serving workers, not the dead one.
	waitFor(t, r.label+": StatusText naming the restarted worker", func() bool {
		pids := statusPIDs(r.box.Show(r.unit, "StatusText")["StatusText"])
		return slices.Contains(pids, fresh) && !slices.Contains(pids, victim)
	})
	r.checkUnit()
	r.outcome("worker killed")
	r.load.WaitRequests(20)
	return victim
}

// statusPIDs returns the pids that baton run's STATUS= for a pool lists as
// serving ("serving: N of M workers (pids A B C)").
func statusPIDs(status string) []int {
	_, rest, ok := strings.Cut(status, "(pids ")
	if !ok {
		return nil
	}
	list, _, _ := strings.Cut(rest, ")")
	var pids []int
	for _, f := range strings.Fields(list) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// window is the watch window part: rounds upgrades, the first with a kill
// of the new child in its window, the second without, then either at
// random (two in three killed). waitWindow: ExecReload= waits for the
// window's end.
func (r *runScenario) window(rounds int, waitWindow bool) {
	t := r.t
	seed := uint64(time.Now().UnixNano())
	t.Logf("scenario 11: window rounds seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 11))
	old := r.status().serving()
	if len(old) != 1 {
		t.Fatalf("after the start: serving %v, want one child", old)
	}
	cur := old[0]
	start := time.Now()
	mains := startMainSampler(r.box, r.unit)
	r.load = r.box.StartLoad(t.Context(), LoadConfig{URL: httpURL})
	r.load.WaitRequests(100)
	var killed []int
	for i := range rounds {
		kill := i == 0 || i != 1 && rng.IntN(3) != 0
		r.label = fmt.Sprintf("systemd %s, reload %d (kill %v, child %d)", r.version, i+1, kill, cur)
		begun := time.Now()
		done := r.reload()
		if !waitWindow {
			if err := <-done; err != nil {
				t.Fatalf("%s: systemctl reload: %v", r.label, err)
			}
		}
		// Plain baton reload has returned at the cut-over: this is at once.
		succ := r.cutOver(cur)
		var ports []int
		if kill {
			ports, kill = r.stopInWindow(rng, succ, begun)
		}
		if kill {
			r.load.MarkLost(ports)
			if err := r.signal(succ, unix.SIGKILL); err != nil {
				t.Fatalf("%s: SIGKILL %d: %v", r.label, succ, err)
			}
			at := time.Since(begun)
			killed = append(killed, succ)
			if got := probeUntil(t, r.box, func(pid int) bool { return pid == cur }); got != cur {
				t.Fatalf("%s: served by %d after the kill %v after the reload began, want the old child %d", r.label, got, at.Round(time.Millisecond), cur)
			}
			if waitWindow {
				if err := <-done; err == nil {
					t.Errorf("%s: systemctl reload succeeded, want it to fail: the new child was rolled back", r.label)
				}
			}
			waitFor(t, r.label+": rolled-back in baton status", func() bool {
				st := r.status()
				o, pid := st.lastUpgrade()
				return o == "rolled-back" && pid == succ && slices.Equal(st.serving(), []int{cur}) && len(st.Children) == 1
			})
			r.outcome("rolled back")
		} else {
			if waitWindow {
				if err := <-done; err != nil {
					t.Fatalf("%s: systemctl reload: %v", r.label, err)
				}
			}
			waitFor(t, r.label+": the old child to exit after the window", func() bool {
				if running(r.box, cur) {
					return false
				}
				st := r.status()
				o, pid := st.lastUpgrade()
				return o == "ok" && pid == succ && slices.Equal(st.serving(), []int{succ}) && len(st.Children) == 1
			})
			if got := probe(t, r.box); got != succ {
				t.Errorf("%s: a new connection is served by %d, want the new child %d", r.label, got, succ)
			}
			cur = succ
			r.outcome("window passed")
		}
		r.checkUnit()
		r.load.WaitRequests(20)
	}
	res := r.load.Stop()
	seen := mains.stop()
	st := r.status()
	journal := r.box.Journal(r.unit)
	failedReloads := strings.Count(journal, "Reload failed for")
	props := r.box.Show(r.unit, "NRestarts")
	Report(t, "scenario 11: systemd=%s part=window requests=%d failed=%d lost_killed=%d reloads=%d wait_window=%v rolled_back=%d window_passed=%d kills_skipped=%d reload_failed=%d restarts=%s mainpids_seen=%d duration=%v failures=%v",
		r.version, res.Requests, res.Failed, res.Lost, r.reloads, waitWindow, r.outcomes["rolled back"], r.outcomes["window passed"],
		r.outcomes["kill too late, skipped"], failedReloads, props["NRestarts"], len(seen), time.Since(start).Round(time.Millisecond), res.Failures)
	if r.outcomes["rolled back"] == 0 || r.outcomes["window passed"] == 0 {
		t.Errorf("outcomes %v: want both a rollback and a window passed", r.outcomes)
	}
	if c := st.Counters; c.UpgradesRolledBack != r.outcomes["rolled back"] || c.UpgradesOK != r.outcomes["window passed"] {
		t.Errorf("baton status: counters %+v, want %d rolled back and %d ok", c, r.outcomes["rolled back"], r.outcomes["window passed"])
	}
	want := 0
	if waitWindow {
		// `systemctl reload` fails on each rollback, and only then.
		want = r.outcomes["rolled back"]
	}
	if failedReloads != want {
		t.Errorf("journal: %d failed reloads, want %d", failedReloads, want)
	}
	if waitWindow {
		r.checkEnd(res, seen, killed, "Reload failed")
	} else {
		r.checkEnd(res, seen, killed)
	}
}

// cutOver waits until the upgrade from the child old has cut over: a new
// child serves, old is on standby. It returns the new child's pid.
func (r *runScenario) cutOver(old int) int {
	r.t.Helper()
	var succ int
	waitFor(r.t, r.label+": the cut-over", func() bool {
		standby := false
		succ = 0
		for _, ch := range r.status().Children {
			switch {
			case ch.PID == old && ch.State == "standby":
				standby = true
			case ch.PID != old && ch.State == "serving":
				succ = ch.PID
			}
		}
		return standby && succ != 0
	})
	return succ
}

// childSampler counts, over and over until stop, the box's running (not
// zombie) processes whose argv[0] is exe, and keeps the most it saw at
// once. A pass lists /proc before it reads each process: a process seen
// running has not exited before the listing, so a pass never counts one
// that was gone before another started.
type childSampler struct {
	box   *Box
	exe   string
	stopc chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	most  int
	at    []int // the pids of the pass that saw the most
}

func startChildSampler(box *Box, exe string) *childSampler {
	s := &childSampler{box: box, exe: exe, stopc: make(chan struct{})}
	s.wg.Go(func() {
		for {
			select {
			case <-s.stopc:
				return
			default:
			}
			if pids := s.pass(); len(pids) > 0 {
				s.mu.Lock()
				if len(pids) > s.most {
					s.most, s.at = len(pids), pids
				}
				s.mu.Unlock()
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
	return s
}

// pass returns the pids of exe's running processes.
func (s *childSampler) pass() []int {
	ps, err := s.box.processes()
	if err != nil {
		return nil
	}
	var pids []int
	for pid, cmdline := range ps {
		if argv0, _, _ := strings.Cut(cmdline, " "); argv0 == s.exe && running(s.box, pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// stop ends the sampling and returns the most children seen at once, and
// their pids.
func (s *childSampler) stop() (int, []int) {
	close(s.stopc)
	s.wg.Wait()
	return s.most, s.at
}

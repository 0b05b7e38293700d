//go:build linux

package supervisor

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/rawhttp"
	"github.com/batonhq/baton/internal/testproc"
)

// TestPoolRollingUpgrades: 4 workers upgraded rolling under load, MaxSurge
// 1 and 2: no request fails, every upgrade replaces every worker, and no
// more than Workers+MaxSurge CMDs ever serve or start at once (counted by
// the supervisor at every start; draining ones come on top).
func TestPoolRollingUpgrades(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	for _, tt := range []struct{ surge, upgrades int }{{1, 12}, {2, 6}} {
		if testproc.InCI() {
			tt.upgrades *= 4
		}
		t.Run("surge "+strconv.Itoa(tt.surge), func(t *testing.T) {
			const workers = 4
			s, _, addr, _ := newServing(t, Config{Workers: workers, MaxSurge: tt.surge})
			l := rawhttp.StartLoad(addr, 8, halfKeepAlive)
			defer l.Stop()
			for i := range tt.upgrades {
				l.Await(20)
				if _, err := s.Upgrade(t.Context()); err != nil {
					t.Fatalf("upgrade %d: %v", i+1, err)
				}
				if v := servingVersions(s); len(v) != 1 || v[i+1] != workers {
					t.Fatalf("after upgrade %d the serving workers' versions are %v, want %d of %d", i+1, v, workers, i+1)
				}
			}
			l.Await(20)
			l.Stop()
			st := s.Stats()
			t.Logf("SIGTERM to exit of replaced workers: %s", summary(st.ExitAfterTerm))
			t.Logf("%d rolling upgrades of %d workers, surge %d: %d requests, %d failed; most CMDs serving or starting at once: %d (draining included: %d)",
				tt.upgrades, workers, tt.surge, l.OK.Load(), l.Failed.Load(), st.PeakLive, st.Peak)
			if n := l.Failed.Load(); n != 0 {
				t.Errorf("%d requests failed, first: %v", n, l.Errors())
			}
			if st.PeakLive != workers+tt.surge {
				t.Errorf("at most %d CMDs serving or starting at once, want %d", st.PeakLive, workers+tt.surge)
			}
			if st.Upgrades != tt.upgrades || st.Generations != workers*(tt.upgrades+1) {
				t.Errorf("stats %+v, want %d upgrades of %d workers", st, tt.upgrades, workers)
			}
		})
	}
}

// TestPoolFailedRollOut: the second new worker of a roll-out fails; the
// roll-out stops, the first new one is stopped too (one version serves),
// the three old ones serve on and no request fails. The next upgrade fills
// the pool again.
func TestPoolFailedRollOut(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	count := filepath.Join(t.TempDir(), "starts")
	s, args, addr, rec := newServing(t, Config{Workers: 4})
	s.cfg.Args = append(args[:len(args):len(args)], "fail-nth", count, "2")
	l := rawhttp.StartLoad(addr, 8, halfKeepAlive)
	defer l.Stop()
	l.Await(50)
	_, err := s.Upgrade(t.Context())
	var se *StartError
	if !errors.As(err, &se) || !errors.Is(err, ErrExited) {
		t.Fatalf("Upgrade = %v, want the second new worker's StartError", err)
	}
	waitFor(t, "the first new worker's exit", func() bool { return len(s.Children()) == 3 })
	if v := servingVersions(s); len(v) != 1 || v[0] != 3 {
		t.Errorf("after the failed roll-out the serving versions are %v, want 3 old workers (version 0)", v)
	}
	if st := s.Stats(); st.FailedUpgrades != 1 || st.Restarts != 0 {
		t.Errorf("stats %+v, want 1 failed upgrade and no restart", st)
	}
	if firstWith(rec.all(), "STATUS=upgrade failed, 3 of 4 workers (the old version) serving") == "" {
		t.Errorf("no STATUS= of the failed roll-out: %q", rec.all())
	}
	l.Await(50)
	s.cfg.Args = args
	if _, err := s.Upgrade(t.Context()); err != nil {
		t.Fatal(err)
	}
	if v := servingVersions(s); len(v) != 1 || v[1] != 4 {
		t.Errorf("after the next upgrade the serving versions are %v, want 4 of version 1 (the failed one took none)", v)
	}
	l.Await(50)
	l.Finish(t, "the load")
}

// TestPoolRestartBackoff: a worker killed outside an upgrade is started
// again, first after RestartDelay, then after twice that when its
// successor dies at once, and counted.
func TestPoolRestartBackoff(t *testing.T) {
	testproc.CheckGoroutines(t)
	s, _, _, _ := newServing(t, Config{Workers: 3})
	for round, want := range []time.Duration{DefaultRestartDelay, 2 * DefaultRestartDelay, 4 * DefaultRestartDelay} {
		victim := workerPID(s, 2)
		if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "worker 2's restart", func() bool { p := workerPID(s, 2); return p != 0 && p != victim })
		s.mu.Lock()
		delay, restarts := s.slots[1].delay, s.slots[1].restarts
		s.mu.Unlock()
		if delay != want || restarts != round+1 {
			t.Errorf("restart %d: delay %s, restarts %d; want %s, %d", round+1, delay, restarts, want, round+1)
		}
	}
	st := s.Stats()
	if st.WorkerExits != 3 || st.Restarts != 3 {
		t.Errorf("stats %+v, want 3 exits and 3 restarts", st)
	}
	for _, c := range s.Children() {
		if want := map[int]int{2: 3}[c.Worker]; c.Restarts != want {
			t.Errorf("worker %d: %d restarts, want %d", c.Worker, c.Restarts, want)
		}
	}
}

// TestPoolStatusAfterRestart: the manager's STATUS= follows a worker's
// exit and restart outside an upgrade: it says the pool is short of the
// dead worker, then names the restarted one, never the dead one as
// serving.
func TestPoolStatusAfterRestart(t *testing.T) {
	testproc.CheckGoroutines(t)
	s, _, _, rec := newServing(t, Config{Workers: 3})
	victim := workerPID(s, 2)
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "worker 2's restart", func() bool { p := workerPID(s, 2); return p != 0 && p != victim })
	fresh := strconv.Itoa(workerPID(s, 2))
	waitFor(t, "STATUS= naming the restarted worker "+fresh, func() bool {
		return slices.Contains(statusPIDs(lastStatus(rec.all())), fresh)
	})
	if last := lastStatus(rec.all()); slices.Contains(statusPIDs(last), strconv.Itoa(victim)) || !strings.Contains(last, "3 of 3 workers") {
		t.Errorf("STATUS= after the restart %q, want 3 of 3 workers without the dead pid %d", last, victim)
	}
	exited := firstWith(rec.all(), "worker 2 (pid "+strconv.Itoa(victim)+") exited")
	if !strings.Contains(exited, "2 of 3 workers") || slices.Contains(statusPIDs(exited), strconv.Itoa(victim)) {
		t.Errorf("STATUS= after the exit %q, want 2 of 3 workers serving and the exit; all: %q", exited, rec.all())
	}
}

// lastStatus returns the value of the last STATUS= among states.
func lastStatus(states []string) string {
	last := ""
	for _, st := range states {
		for line := range strings.Lines(st) {
			if v, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "STATUS="); ok {
				last = v
			}
		}
	}
	return last
}

// statusPIDs returns the pids that a pool's STATUS= lists as serving
// ("serving: N of M workers (pids A B C)").
func statusPIDs(status string) []string {
	_, rest, ok := strings.Cut(status, "(pids ")
	if !ok {
		return nil
	}
	list, _, _ := strings.Cut(rest, ")")
	return strings.Fields(list)
}

// TestPoolScale: a pool grows and shrinks at run time under load without a
// failed request.
func TestPoolScale(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	s, _, addr, _ := newServing(t, Config{Workers: 2})
	l := rawhttp.StartLoad(addr, 8, halfKeepAlive)
	defer l.Stop()
	for _, n := range []int{5, 1, 3} {
		l.Await(50)
		if err := s.Scale(n); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the new size "+strconv.Itoa(n), func() bool {
			return len(s.Children()) == n && s.Stats().Workers == n && len(servingVersions(s)) == 1 && servingVersions(s)[0] == n
		})
	}
	l.Await(50)
	l.Finish(t, "the load")
	if err := s.Scale(0); err == nil {
		t.Error("Scale(0) succeeded")
	}
}

// servingVersions counts the serving workers by version.
func servingVersions(s *Supervisor) map[int]int {
	v := map[int]int{}
	for _, c := range s.Children() {
		if c.State == "serving" {
			v[c.Version]++
		}
	}
	return v
}

// workerPID returns the pid of the serving worker n (1...), 0 when none.
func workerPID(s *Supervisor, n int) int {
	for _, c := range s.Children() {
		if c.Worker == n && c.State == "serving" {
			return c.PID
		}
	}
	return 0
}

// TestPoolStopDuringRollOut: a stop while a roll-out's new worker starts
// abandons the roll-out (ErrStopping), stops every worker, and Run returns
// their exit status 0.
func TestPoolStopDuringRollOut(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	s, args, _, _ := newSup(t, Config{Workers: 3})
	done := runStarted(t, s)
	waitFor(t, "the first workers", func() bool { return servingVersions(s)[0] == 3 })
	workers := s.Children()
	s.cfg.Args = append(args[:len(args):len(args)], "hang")
	upgraded := make(chan error, 1)
	go func() { _, err := s.Upgrade(t.Context()); upgraded <- err }()
	waitFor(t, "the roll-out's first start", func() bool { return s.Stats().Generations == 4 })
	if err := s.Stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-upgraded; !errors.Is(err, ErrStopping) {
		t.Errorf("the roll-out after Stop = %v, want ErrStopping", err)
	}
	var ee *ExitError
	if err := <-done; !errors.As(err, &ee) || ee.Status.Code != 0 {
		t.Errorf("Run = %v, want the workers' exit status 0", err)
	}
	for _, c := range workers {
		if testproc.Alive(c.PID) {
			t.Errorf("worker %d (pid %d) still runs after Run", c.Worker, c.PID)
		}
	}
}

// TestPoolRollOutDoesNotWaitForDrains: the replaced workers of a pool
// drain for a long time (a lame duck longer than the test); the roll-out
// does not wait for them: it returns with every worker replaced and the
// four old ones still draining, and never more than Workers+MaxSurge
// CMDs serving or starting. Before, it started the next worker only once
// a draining one had exited: a roll-out took one whole drain per worker.
func TestPoolRollOutDoesNotWaitForDrains(t *testing.T) {
	testproc.CheckGoroutines(t)
	const workers = 4
	s, _, _, _ := newServing(t, Config{Workers: workers, MaxSurge: 1, Drain: time.Minute, Env: []string{"CHILD_LAME_DUCK=1m"}})
	old := map[int]bool{}
	for n := 1; n <= workers; n++ {
		old[workerPID(s, n)] = true
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if _, err := s.Upgrade(ctx); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if v := servingVersions(s); v[1] != workers {
		t.Errorf("serving versions %v, want %d of version 1", v, workers)
	}
	draining := 0
	for _, c := range s.Children() {
		if old[c.PID] && c.State != "serving" {
			draining++
		}
	}
	if draining != workers {
		t.Errorf("%d old workers draining when the roll-out returned, want %d", draining, workers)
	}
	if st := s.Stats(); st.PeakLive != workers+1 {
		t.Errorf("at most %d CMDs serving or starting at once, want %d", st.PeakLive, workers+1)
	}
	for pid := range old { // their drain would outlast the test
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

package handoff

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/control"
	"github.com/batonhq/baton/internal/testproc"
)

// servedBy waits until a fresh request is answered by pid and returns how
// long that took.
func (s *service) servedBy(pid int) time.Duration {
	s.t.Helper()
	start := time.Now()
	deadline := start.Add(wait)
	for {
		got, err := s.get("")
		if err == nil && got == pid {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("not served by %d (last: %d, %v)", pid, got, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// mainPIDs returns the pids named by MAINPID= in the messages so far.
func (s *service) mainPIDs() []string {
	s.notes.mu.Lock()
	defer s.notes.mu.Unlock()
	var out []string
	for _, m := range s.notes.msgs {
		for _, l := range strings.Split(m.text, "\n") {
			if v, ok := strings.CutPrefix(l, "MAINPID="); ok {
				out = append(out, v)
			}
		}
	}
	return out
}

func statusOf(t *testing.T, pid int) Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	raw, err := control.Status(ctx, pid)
	if err != nil {
		t.Fatalf("status of %d: %v", pid, err)
	}
	var st Status
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// A successor killed at a random moment of its watch window, under load:
// nothing is refused and no request fails but those in flight on the
// connections the killed process held (lost by construction, counted
// apart as in TestChaos); the old generation serves again, the manager is
// never told MAINPID= of the successor, and the history says "rolled
// back". `baton reload` returns at the cut-over with the successor's pid.
func TestWatchWindowRollback(t *testing.T) {
	rounds := testproc.Rounds(10, 100)
	// The kill comes within killWithin of the reload's answer: the window
	// leaves room for that answer to be late on a loaded machine.
	const window, killWithin = 3 * time.Second, 800 * time.Millisecond
	s := startService(t, serviceOpts{env: []string{envTestWatch + "=" + window.String()}})
	main := s.gen1
	_, port, _ := strings.Cut(s.addr, ":")
	c := &chaos{t: t, s: s, procs: map[int]int{}, killed: map[int]bool{}, kind: "kill-in-window"}
	c.port, _ = strconv.Atoi(port)
	l := startChaosLoad(s.addr, 4, 2)
	var back []time.Duration
	for i := range rounds {
		c.label = fmt.Sprintf("round %d", i)
		next := mustReload(t, main)
		if next == main || next == 0 {
			t.Fatalf("round %d: reload returned %d", i, next)
		}
		c.track(next)
		// Within the window, right after the cut-over included.
		time.Sleep(time.Duration(rand.Int64N(int64(killWithin))))
		if killed, _ := c.kill(next, l); !killed {
			t.Fatalf("round %d: successor %d gone before it was killed", i, next)
		}
		c.waitGone(next)
		back = append(back, s.servedBy(main))
		s.notes.waitFor(t, "the rollback's STATUS=", has(main, fmt.Sprintf("rolled back generation 2 (pid %d)", next)))
	}
	l.stop()
	if n := l.failures.Load(); n != 0 {
		t.Errorf("%d requests failed (not on a killed process): %v", n, l.errs)
	}
	if m := s.mainPIDs(); len(m) != 0 {
		t.Errorf("MAINPID= sent for a successor that died in its window: %v", m)
	}
	st := statusOf(t, main)
	if st.Counters.UpgradesRolledBack != rounds || st.State != StateServing {
		t.Errorf("status: %d rolled back, state %q; want %d, %q", st.Counters.UpgradesRolledBack, st.State, rounds, StateServing)
	}
	if last := st.Upgrades[len(st.Upgrades)-1]; last.Outcome != OutcomeRolledBack || !strings.Contains(last.Reason, "killed") {
		t.Errorf("last upgrade: %+v", last)
	}
	slices.Sort(back)
	t.Logf("%d rollbacks; %d requests answered, %d lost in flight on the killed successors, 0 other failures; successor gone -> old answers a fresh request: median %v, max %v",
		rounds, l.requests.Load(), l.lost.Load(), back[len(back)/2], back[len(back)-1])
	s.stop(main)
}

// A successor that exits by itself once it serves (a new version that
// crashes) is rolled back, the reason naming its exit status; `baton
// reload --wait-window` reports the rollback, and the success of a window
// that passes once it has passed.
func TestWatchWindowSuccessorExits(t *testing.T) {
	fault := filepath.Join(t.TempDir(), "fault")
	s := startService(t, serviceOpts{env: []string{envTestWatch + "=1s", envFault + "=die-serving", envFaultFile + "=" + fault}})
	if err := os.WriteFile(fault, []byte("50ms"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	_, err := control.ReloadWith(ctx, s.gen1, control.ReloadOptions{WaitWindow: true})
	if !errors.Is(err, control.ErrRolledBack) || !strings.Contains(err.Error(), "exit status 5") {
		t.Fatalf("reload --wait-window: %v, want a rollback naming exit status 5", err)
	}
	s.servedBy(s.gen1)
	s.notes.waitFor(t, "the rollback's STATUS=", has(s.gen1, "exit status 5"))
	start := time.Now()
	next, err := control.ReloadWith(ctx, s.gen1, control.ReloadOptions{WaitWindow: true})
	if err != nil {
		t.Fatalf("reload --wait-window of a successor that lives: %v", err)
	}
	if m := s.mainPIDs(); !slices.Contains(m, strconv.Itoa(next)) {
		t.Errorf("reload --wait-window returned %d after %v, before MAINPID= (sent: %v)", next, time.Since(start), m)
	}
	s.stop(next)
}

// A window that passes quietly: the old generation keeps the main PID
// (MAINPID= is sent only once the window has passed), refuses upgrades
// meanwhile, then hands over and exits; nothing fails.
func TestWatchWindowQuiet(t *testing.T) {
	const window = 1500 * time.Millisecond
	s := startService(t, serviceOpts{env: []string{envTestWatch + "=" + window.String()}})
	l := startLoad(s.addr, 4, 2)
	next := mustReload(t, s.gen1)
	s.servedBy(next)
	if m := s.mainPIDs(); len(m) != 0 {
		t.Errorf("MAINPID= before the window passed: %v", m)
	}
	for _, pid := range []int{s.gen1, next} {
		if _, err := reload(t, pid); !errors.Is(err, control.ErrInProgress) {
			t.Errorf("reload of %d in the window: %v, want in progress", pid, err)
		}
	}
	if st := statusOf(t, s.gen1); st.State != StateWatching || st.Watch == nil || st.Watch.Role != "watching" || st.Watch.PID != next || st.Watch.Until.IsZero() {
		t.Errorf("old generation in the window: state %q, watch %+v", st.State, st.Watch)
	}
	if st := statusOf(t, next); st.State != StateServing || st.Watch == nil || st.Watch.Role != "probation" || st.Watch.PID != s.gen1 {
		t.Errorf("new generation in the window: state %q, watch %+v", st.State, st.Watch)
	}
	s.notes.waitFor(t, "MAINPID= after the window", has(s.gen1, fmt.Sprintf("MAINPID=%d", next)))
	if ws := s.waitExit(s.gen1); ws.ExitStatus() != 0 {
		t.Errorf("old generation exited with %v", ws)
	}
	s.notes.waitFor(t, "the successor's STATUS= as main", has(next, "serving, generation 2"))
	// The successor is main: it upgrades (and watches) in turn.
	third := mustReload(t, next)
	s.servedBy(third)
	l.stop()
	if n := l.failures.Load(); n != 0 {
		t.Errorf("%d of %d requests failed: %v", n, l.requests.Load()+n, l.errs)
	}
	// Its own upgrade is in its history; the third's is the third's once
	// its window has passed.
	if st := statusOf(t, next); st.Counters.UpgradesOK != 1 || st.State != StateWatching {
		t.Errorf("status of %d: %d upgrades ok, state %q; want 1, %q", next, st.Counters.UpgradesOK, st.State, StateWatching)
	}
}

// A successor stopped alone in the window (someone's SIGTERM to its pid)
// is rolled back at once; a stop of the old generation in the window stops
// both, cleanly.
func TestWatchWindowStops(t *testing.T) {
	s := startService(t, serviceOpts{env: []string{envTestWatch + "=30s"}})
	l := startLoad(s.addr, 2, 2)
	next := mustReload(t, s.gen1)
	s.servedBy(next)
	if err := syscall.Kill(next, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	s.servedBy(s.gen1)
	s.notes.waitFor(t, "rollback", has(s.gen1, "successor stopped"))
	testproc.WaitGone(t, next)
	l.stop()
	if n := l.failures.Load(); n != 0 {
		t.Errorf("%d of %d requests failed: %v", n, l.requests.Load()+n, l.errs)
	}

	next = mustReload(t, s.gen1)
	s.servedBy(next)
	s.stop(s.gen1)
	testproc.WaitGone(t, next)
	s.notes.waitFor(t, "STOPPING=1 from the main process", has(s.gen1, "STOPPING=1"))
	if m := s.mainPIDs(); len(m) != 0 {
		t.Errorf("MAINPID= sent: %v", m)
	}
}

// A watch window needs nothing of the servers: one on a socket the
// Upgrader cannot pause (UDP) serves on through the window, and the
// upgrade succeeds (it used to fail for want of a handoff.Renewer).
func TestWatchWindowAnyServer(t *testing.T) {
	s := startService(t, serviceOpts{udp: true, env: []string{envTestWatch + "=1s"}})
	next := mustReload(t, s.gen1)
	s.servedBy(next)
	s.notes.waitFor(t, "the main PID moved after the window", has(s.gen1, "MAINPID="+strconv.Itoa(next)))
	s.waitExit(s.gen1)
	s.stop(next)
}

// The old generation killed in the window (SIGKILL, a crash) once it has
// drained: the successor, serving on probation, sees its channel close,
// claims the main PID itself and serves on; no request fails.
func TestWatchWindowPredecessorKilled(t *testing.T) {
	s := startService(t, serviceOpts{env: []string{envTestWatch + "=30s"}})
	l := startLoad(s.addr, 2, 2)
	next := mustReload(t, s.gen1)
	s.servedBy(next)
	// Drained: it holds no connection a kill would cut.
	deadline := time.Now().Add(wait)
	for statusOf(t, s.gen1).Connections != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the old generation did not drain")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := syscall.Kill(s.gen1, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s.waitExit(s.gen1)
	s.notes.waitFor(t, "the successor's claim", has(next, fmt.Sprintf("MAINPID=%d", next)))
	if st := statusOf(t, next); st.State != StateServing || st.Watch != nil {
		t.Errorf("successor after its predecessor's death: state %q, watch %+v", st.State, st.Watch)
	}
	third := mustReload(t, next) // main now: it upgrades
	s.servedBy(third)
	l.stop()
	if n := l.failures.Load(); n != 0 {
		t.Errorf("%d of %d requests failed: %v", n, l.requests.Load()+n, l.errs)
	}
}

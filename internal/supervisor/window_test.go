//go:build linux

package supervisor

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/rawhttp"
	"github.com/batonhq/baton/internal/testproc"
)

// TestWatchWindowRollback: a new CMD that dies at a random time within the
// watch window is rolled back: the old CMD, which kept accepting on the
// shared socket all along, serves alone again, no request fails, and the
// rollback is counted, recorded and told to the manager. (The new CMD dies
// as a crash that loses nothing does: it answers what it accepted, then
// exits 3. A crash that cuts requests in flight loses them whatever the
// supervisor does. The window is long enough for its drain, up to 2s with
// a client that stays silent, to end within it.)
func TestWatchWindowRollback(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	reps := testproc.Rounds(24, 100)
	s, args, addr, rec := newServing(t, Config{WatchWindow: 3 * time.Second})
	old := s.PID()
	l := rawhttp.StartLoad(addr, 8, halfKeepAlive)
	defer l.Stop()
	var toRollback, toOld []time.Duration
	for i := range reps {
		l.Await(20)
		ms := rand.IntN(400)
		if i == 0 {
			ms = 300 // long enough to try a second upgrade in the window
		}
		s.cfg.Args = append(args[:len(args):len(args)], "die-after", strconv.Itoa(ms))
		if i%4 == 3 {
			// baton reload --wait-window: the outcome is the rollback.
			_, err := s.UpgradeWith(t.Context(), UpgradeOptions{WaitWindow: true})
			if !errors.Is(err, ErrRolledBack) || !strings.Contains(err.Error(), "ended (exit status 3)") {
				t.Fatalf("upgrade %d with WaitWindow = %v, want ErrRolledBack", i+1, err)
			}
		} else {
			pid, err := s.Upgrade(t.Context())
			if err != nil || pid == old {
				t.Fatalf("upgrade %d = %d, %v: want the new pid at the cut-over", i+1, pid, err)
			}
			s.mu.Lock()
			w := s.window
			s.mu.Unlock()
			if i == 0 {
				if _, err := s.Upgrade(t.Context()); !errors.Is(err, ErrInProgress) || !strings.Contains(err.Error(), "(watch window until ") {
					t.Errorf("upgrade during the window = %v, want in progress (watch window until T)", err)
				}
			}
			waitFor(t, "the rollback", func() bool { return s.Stats().RolledBack == i+1 })
			if w != nil {
				toRollback = append(toRollback, time.Since(w.new.exitedAt))
				if ok, c, last := l.AwaitAll(old, 30*time.Second); !ok {
					t.Fatalf("client %d: last answer from %d, want the old pid %d", c, last, old)
				}
				toOld = append(toOld, time.Since(w.new.exitedAt))
			}
		}
		if s.PID() != old {
			t.Fatalf("after rollback %d pid %d serves, want %d", i+1, s.PID(), old)
		}
	}
	l.Await(50)
	l.Stop()
	t.Logf("%d rollbacks, %d requests, %d failed; new CMD's exit to rollback: %s; to every client answered by the old CMD: %s",
		reps, l.OK.Load(), l.Failed.Load(), summary(toRollback), summary(toOld))
	if n := l.Failed.Load(); n != 0 {
		t.Errorf("%d requests failed, first: %v", n, l.Errors())
	}
	if st := s.Stats(); st.RolledBack != reps || st.Upgrades != 0 || st.FailedUpgrades != 0 {
		t.Errorf("stats %+v, want %d rollbacks and nothing else", st, reps)
	}
	h := s.History()
	if len(h) != min(reps, HistoryLen) || h[len(h)-1].Outcome != OutcomeRolledBack || !strings.Contains(h[len(h)-1].Reason, "rolled back") {
		t.Errorf("history %+v, want %d rollbacks", h, min(reps, HistoryLen))
	}
	if firstWith(rec.all(), "STATUS=rolled back: pid ") == "" {
		t.Errorf("the manager was not told of the rollbacks: %q", rec.all())
	}
}

// TestWatchWindowPasses: the old CMD stays on standby (running, not
// signalled) during the window and is stopped once it passes; with
// WaitWindow the upgrade returns then.
func TestWatchWindowPasses(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	s, _, addr, rec := newServing(t, Config{WatchWindow: 300 * time.Millisecond})
	l := rawhttp.StartLoad(addr, 4, halfKeepAlive)
	defer l.Stop()
	old := s.PID()
	pid, err := s.Upgrade(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	states := map[int]string{}
	for _, c := range s.Children() {
		states[c.PID] = c.State
	}
	if states[old] != "standby" || states[pid] != "serving" {
		t.Errorf("during the window: %v, want %d standby and %d serving", states, old, pid)
	}
	testproc.WaitGone(t, old)
	if st := s.Stats(); st.Upgrades != 1 || st.RolledBack != 0 {
		t.Errorf("after the window: %+v, want 1 upgrade", st)
	}
	pid2, err := s.UpgradeWith(t.Context(), UpgradeOptions{WaitWindow: true})
	if err != nil || pid2 == pid {
		t.Fatalf("UpgradeWith WaitWindow = %d, %v", pid2, err)
	}
	for _, c := range s.Children() {
		if c.PID == pid && c.State != "draining" {
			t.Errorf("pid %d is %s when the waited window ended, want draining", pid, c.State)
		}
	}
	l.Await(20)
	l.Finish(t, "the load")
	if h := s.History(); len(h) != 2 || h[0].Outcome != OutcomeOK || h[1].Outcome != OutcomeOK {
		t.Errorf("history %+v, want 2 ok", h)
	}
	if firstWith(rec.all(), "; watch window until ") == "" {
		t.Errorf("no STATUS= of the window: %q", rec.all())
	}
}

// newSup makes a Supervisor of the go-child serving one socket named http
// on a loopback address: cfg.Args, when set, are the go-child's mode
// arguments and cfg.Env is added to its environment; Drain is 10s unless
// set, and rec gets the manager's messages. args are the go-child's
// arguments without a mode.
func newSup(t *testing.T, cfg Config) (s *Supervisor, args []string, addr string, rec *recorder) {
	t.Helper()
	sock, url := listen(t)
	args, env := childArgs(t)
	rec = &recorder{}
	cfg.Args = append(args[:len(args):len(args)], cfg.Args...)
	cfg.Env = append(env, cfg.Env...)
	cfg.Sockets, cfg.Manager = []Socket{sock}, rec.notify
	if cfg.Drain == 0 {
		cfg.Drain = 10 * time.Second
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, args, strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/"), rec
}

// newServing is newSup, run until the test ends (running), returned once
// a CMD serves.
func newServing(t *testing.T, cfg Config) (s *Supervisor, args []string, addr string, rec *recorder) {
	t.Helper()
	s, args, addr, rec = newSup(t, cfg)
	running(t, s)
	return s, args, addr, rec
}

// runStarted runs s with a context that is never cancelled (the test
// stops s itself) and returns Run's outcome channel once a CMD serves.
func runStarted(t *testing.T, s *Supervisor) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	waitFor(t, "a serving CMD", func() bool { return s.PID() != 0 })
	return done
}

// waitFor polls cond until it holds, for at most 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 30s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func halfKeepAlive(i int) bool { return i%2 == 0 }

// summary is "median M, max X (n N)" of ds.
func summary(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return "median " + ds[len(ds)/2].Round(10*time.Microsecond).String() + ", max " + ds[len(ds)-1].Round(10*time.Microsecond).String() + " (n " + strconv.Itoa(len(ds)) + ")"
}

// TestWindowEndSeesExit: when the window's end and the new CMD's exit are
// both due, the exit wins: the supervisor rolls back rather than retire
// the CMD that still serves. (A select between two ready channels picks
// either; each round here has both ready before runWindow starts.)
func TestWindowEndSeesExit(t *testing.T) {
	for i := range 64 {
		s := &Supervisor{cfg: Config{WatchWindow: time.Millisecond}, log: slog.New(slog.DiscardHandler), stopping: make(chan struct{}), idle: make(chan struct{}, 1)}
		old := &child{pid: 1 << 30, state: stateStandby, done: make(chan struct{}), ready: make(chan struct{})}
		nw := &child{pid: 1<<30 + 1, state: stateExited, done: make(chan struct{}), ready: make(chan struct{})}
		nw.exited(ExitStatus{Code: -1, Signal: syscall.SIGKILL})
		s.slots = []*slot{{c: nw}}
		now := time.Now()
		w := &window{cut: now.Add(-time.Second), until: now.Add(-time.Millisecond), old: old, new: nw, begun: now.Add(-time.Second), result: make(chan error, 1)}
		s.window, s.op = w, opWindow
		s.wg.Add(1)
		s.runWindow(w)
		if err := <-w.result; !errors.Is(err, ErrRolledBack) {
			t.Fatalf("round %d: window outcome %v, want ErrRolledBack", i+1, err)
		}
		if s.slots[0].c != old || old.state != stateServing {
			t.Fatalf("round %d: slot serves pid %d (old in state %s), want the old CMD serving", i+1, s.slots[0].c.pid, old.state)
		}
	}
}

// TestExitPending: exitPending tells an exited child not yet reaped (and
// one reaped already) from a running one.
func TestExitPending(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if exitPending(pid) {
		t.Errorf("exitPending(%d) of a running child = true", pid)
	}
	_ = cmd.Process.Kill()
	waitFor(t, "the zombie", func() bool {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		_, rest, _ := strings.Cut(string(b), ") ")
		return err == nil && strings.HasPrefix(rest, "Z")
	})
	if !exitPending(pid) {
		t.Errorf("exitPending(%d) of a zombie = false", pid)
	}
	_ = cmd.Wait()
	if !exitPending(pid) {
		t.Errorf("exitPending(%d) of a reaped child = false", pid)
	}
}

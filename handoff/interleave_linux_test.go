package handoff

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/internal/rawhttp"
)

// Replaying an interleaving run: the seed and the number of steps it
// logged.
const (
	envInterleaveSeed  = "BATON_INTERLEAVE_SEED"
	envInterleaveSteps = "BATON_INTERLEAVE_STEPS"
)

// The steps of TestInterleavings, each a short story of the lifecycle
// with a watch window (interleaveWindow) under load:
//
//   - stepUpgrade: a reload; the successor serves at the cut-over and is
//     handed the main PID when the window has passed.
//   - stepKillInWindow: a reload, then SIGKILL of the successor in its
//     window: the old generation resumes (a rollback) and stays main; what
//     the killed one had accepted is lost with it.
//   - stepUpgradeInDrain: a long request on the main generation, a reload,
//     and, once the main PID moved, a second reload while the first old
//     generation still drains (the long request is answered).
//   - stepStopInWindow: a reload, then SIGTERM of the old generation in
//     the window: both stop; generation 1 is started again on the held
//     socket, as the manager does.
//   - stepStopInDrain: a long request on the main generation, a reload,
//     and once the main PID moved a SIGTERM of the new main while the old
//     one still drains; generation 1 is started again.
//
// After each step (settle, and more): exactly one generation accepts
// (fresh connections all reach the main one, which is alive), its
// shutdown hook has not run (X-Hooks: 0: the hooks run at the final drain
// only, where a generation that ran them twice exits 9, which settle
// reports), no lifecycle transition was refused (BATON_TEST_REFUSED stays
// empty), and no request failed except on a SIGKILLed process.
const (
	stepUpgrade        = "upgrade"
	stepKillInWindow   = "kill-in-window"
	stepUpgradeInDrain = "upgrade-in-drain"
	stepStopInWindow   = "stop-in-window"
	stepStopInDrain    = "stop-in-drain"
)

var steps = []string{stepUpgrade, stepKillInWindow, stepUpgradeInDrain, stepStopInWindow, stepStopInDrain}

// interleaveWindow is the watch window of the interleaving test: long
// enough to act in, short enough for many steps.
const interleaveWindow = 2 * time.Second

func TestInterleavings(t *testing.T) {
	n := 12
	if os.Getenv("CI") == "true" {
		n = 30
	}
	if testing.Short() {
		n = 5
	}
	if v, err := strconv.Atoi(os.Getenv(envInterleaveSteps)); err == nil && v > 0 {
		n = v
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(envInterleaveSeed); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", envInterleaveSeed, v, err)
		}
		seed = s
	}
	t.Logf("interleavings: seed %d, %d steps (replay: %s=%d %s=%d)", seed, n, envInterleaveSeed, seed, envInterleaveSteps, n)
	checkLeaks(t)
	rng := rand.New(rand.NewPCG(seed, seed>>32|1))
	refused := filepath.Join(t.TempDir(), "refused")
	c := startChaos(t, envTestWatch+"="+interleaveWindow.String(), envRefused+"="+refused)
	l := startChaosLoad(c.addr, 2, 2)
	t.Cleanup(l.stop)
	counts := map[string]int{}
	for i := range n {
		step := steps[rng.IntN(len(steps))]
		counts[step]++
		label := fmt.Sprintf("step %d (%s, main %d)", i+1, step, c.main)
		c.label, c.kind = label, step
		l.label.Store(&label)
		c.step(step, l)
		c.settle()
		c.checkHooks()
		if b, _ := os.ReadFile(refused); len(b) > 0 {
			t.Errorf("%s: lifecycle transitions refused:\n%s", label, b)
		}
		if t.Failed() {
			t.Logf("stopping at %s (seed %d)", label, seed)
			break
		}
	}
	l.stop()
	var done []string
	for _, s := range steps {
		done = append(done, fmt.Sprintf("%s=%d", s, counts[s]))
	}
	t.Logf("steps: %s; restarts %d; requests: %d answered, %d lost on SIGKILLed processes, %d other failures",
		strings.Join(done, " "), c.restarts, l.requests.Load(), l.lost.Load(), l.failures.Load())
	if f := l.failures.Load(); f > 0 {
		t.Errorf("%d failed requests not on a killed process (seed %d), first ones:\n%s", f, seed, strings.Join(l.errs, "\n"))
	}
	c.stopAll()
}

// step runs one step of TestInterleavings.
func (c *chaos) step(step string, l *chaosLoad) {
	t := c.t
	old := c.main
	mark := c.mark()
	switch step {
	case stepUpgrade:
		next := c.expectOK(reloadResult(t, old))
		c.waitMain(mark, old, next)

	case stepKillInWindow:
		r := reloadResult(t, old)
		if r.err != nil {
			t.Fatalf("%s: reload = %v", c.label, r.err)
		}
		c.track(r.pid)
		if killed, _ := c.kill(r.pid, l); !killed {
			t.Fatalf("%s: the successor %d had exited", c.label, r.pid)
		}
		c.waitNote(mark, old, "rolled back generation")

	case stepUpgradeInDrain:
		long := c.longRequest()
		next := c.expectOK(reloadResult(t, old))
		c.waitMain(mark, old, next)
		mark = c.mark()
		third := c.expectOK(reloadResult(t, next))
		c.waitMain(mark, next, third)
		c.checkLong(long, old)

	case stepStopInWindow:
		r := reloadResult(t, old)
		if r.err != nil {
			t.Fatalf("%s: reload = %v", c.label, r.err)
		}
		c.track(r.pid)
		if err := c.signal(old, unix.SIGTERM); err != nil {
			t.Fatal(err)
		}
		c.waitGone(old)
		c.waitGone(r.pid)
		c.restart()

	case stepStopInDrain:
		long := c.longRequest()
		next := c.expectOK(reloadResult(t, old))
		c.waitMain(mark, old, next)
		if err := c.signal(next, unix.SIGTERM); err != nil {
			t.Fatal(err)
		}
		c.checkLong(long, old)
		c.waitGone(next)
		c.waitGone(old)
		c.restart()
	}
}

// waitMain waits until old has handed the main PID to next at the end of
// the window (MAINPID=). Next may not have read MAIN yet: a reload it gets
// then waits for it (before, it was refused as in the window).
func (c *chaos) waitMain(mark, old, next int) {
	c.t.Helper()
	c.waitNote(mark, old, "MAINPID="+strconv.Itoa(next))
}

// restart starts generation 1 again on the held socket, after the whole
// service stopped; the stopped generations are accounted for first.
func (c *chaos) restart() {
	for pid, fd := range c.procs {
		if c.s.exited(pid) {
			if ws := c.s.waitExit(pid); !ws.Exited() || ws.ExitStatus() != 0 {
				c.t.Errorf("%s: pid %d ended with %v, want exit status 0", c.label, pid, ws)
			}
		}
		_ = unix.Close(fd)
		delete(c.procs, pid)
	}
	c.restarts++
	c.startGen1()
}

// longRequest starts a request to the main generation that takes 1.5 s
// (its drain waits for it) and returns its outcome's channel.
func (c *chaos) longRequest() <-chan result {
	ch := make(chan result, 1)
	started := make(chan struct{})
	go func() {
		cl := &rawhttp.Client{Addr: c.addr, Timeout: wait}
		defer cl.Close()
		close(started)
		h, err := cl.Get("/?ms=1500")
		pid, _ := strconv.Atoi(h.Get("X-Pid"))
		ch <- result{pid, err}
	}()
	<-started
	time.Sleep(100 * time.Millisecond) // on its way: not asserted on
	return ch
}

// checkLong checks that the long request was answered, by main (the
// generation it reached before the upgrades) or a later one.
func (c *chaos) checkLong(ch <-chan result, main int) {
	c.t.Helper()
	r := <-ch
	if r.err != nil {
		c.t.Errorf("%s: the long request to %d failed: %v", c.label, main, r.err)
	}
}

// checkHooks checks that the main generation's shutdown hook has not run.
func (c *chaos) checkHooks() {
	c.t.Helper()
	h, err := (&rawhttp.Client{Addr: c.addr, Timeout: wait}).Get("/")
	if err != nil {
		c.t.Errorf("%s: %v", c.label, err)
		return
	}
	if got := h.Get("X-Hooks"); got != "0" {
		c.t.Errorf("%s: main %s answered with its shutdown hook run %s times", c.label, h.Get("X-Pid"), got)
	}
}

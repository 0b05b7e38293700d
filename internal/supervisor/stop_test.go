//go:build linux

package supervisor

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testproc"
)

// TestStopDelay: Stop(SIGTERM) with StopDelay tells the manager
// STOPPING=1 at once and refuses upgrades, while the serving CMD goes on
// serving without a failed request; a second Stop ends the delay and Run
// returns the CMD's status.
func TestStopDelay(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	s, _, addr, rec := newSup(t, Config{StopDelay: time.Minute})
	done := runStarted(t, s)
	serving := s.PID()
	l := startLoad("http://"+addr+"/", 4)
	l.waitRequests(20)
	if err := s.Stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if firstWith(rec.all(), "STOPPING=1") == "" {
		t.Errorf("no STOPPING=1 when Stop returned: %q", rec.all())
	}
	if _, err := s.Upgrade(t.Context()); !errors.Is(err, ErrStopping) {
		t.Errorf("Upgrade during the stop delay = %v, want ErrStopping", err)
	}
	l.waitRequests(200)
	l.finish(t)
	if s.PID() != serving {
		t.Errorf("serving pid %d, want %d", s.PID(), serving)
	}
	if err := s.Stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		var ee *ExitError
		if !errors.As(err, &ee) || ee.PID != serving || ee.Status.Code != 0 {
			t.Errorf("Run = %v, want pid %d's exit status 0", err, serving)
		}
	case <-time.After(30 * time.Second): // well before the minute
		t.Fatal("the second Stop did not end the delay")
	}
}

// TestMaxDrainingKillsOldest: CMDs that ignore SIGTERM stay draining
// until Drain; with MaxDraining 2 the third upgrade kills the first one,
// counts it and says so in STATUS=, and the two others drain on.
func TestMaxDrainingKillsOldest(t *testing.T) {
	testproc.CheckGoroutines(t)
	args, env := childArgs(t, "family")
	env = append(env, "GRANDCHILD_FILE="+filepath.Join(t.TempDir(), "grandchild"))
	rec := &recorder{}
	s, err := New(Config{Args: args, Env: env, Drain: 5 * time.Second, MaxDraining: 2, Manager: rec.notify})
	if err != nil {
		t.Fatal(err)
	}
	running(t, s)
	pids := []int{s.PID()}
	for i := range 3 {
		pid, err := s.Upgrade(t.Context())
		if err != nil {
			t.Fatalf("upgrade %d: %v", i+1, err)
		}
		pids = append(pids, pid)
	}
	if st := s.Stats(); st.ForceClosed != 1 {
		t.Errorf("Stats.ForceClosed = %d, want 1", st.ForceClosed)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, _, ok := procStat(pids[0])
		if !ok || st == "Z" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first CMD %d still runs (state %s)", pids[0], st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, pid := range pids[1:3] {
		if st, _, ok := procStat(pid); !ok || st == "Z" {
			t.Errorf("pid %d is gone, want it draining", pid)
		}
	}
	note := fmt.Sprintf("force-closed draining generation 1 (pid %d): MaxDraining=2", pids[0])
	var reloading, ready bool
	for _, st := range rec.all() {
		reloading = reloading || strings.HasPrefix(st, "RELOADING=1") && strings.Contains(st, "STATUS=upgrading; "+note)
		ready = ready || strings.HasPrefix(st, "READY=1") && strings.HasSuffix(st, "; "+note)
	}
	if !reloading || !ready {
		t.Errorf("STATUS= with RELOADING=1 %v, with READY=1 %v; want both to say %q: %q", reloading, ready, note, rec.all())
	}
}

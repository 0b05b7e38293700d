//go:build linux

package supervisor

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testproc"
)

// procStat returns a process's state and process group from
// /proc/PID/stat; ok is false when the process is gone.
func procStat(pid int) (state string, pgrp int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, false
	}
	// pid (comm) state ppid pgrp ...
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	if len(f) < 3 {
		return "", 0, false
	}
	pgrp, _ = strconv.Atoi(f[2])
	return f[0], pgrp, true
}

// TestCMDInOwnProcessGroup checks that every CMD leads a process group of
// its own, so a terminal's Ctrl-C for the supervisor's group does not reach
// it besides the forwarded signal.
func TestCMDInOwnProcessGroup(t *testing.T) {
	testproc.CheckGoroutines(t)
	s, _, _, _ := newServing(t, Config{})
	for i := range 2 {
		pid := s.PID()
		_, pgrp, ok := procStat(pid)
		if !ok {
			t.Fatalf("CMD %d gone", pid)
		}
		if pgrp != pid || pgrp == syscall.Getpgrp() {
			t.Errorf("generation %d: CMD %d in process group %d, want its own (the supervisor's is %d)", i+1, pid, pgrp, syscall.Getpgrp())
		}
		if _, err := s.Upgrade(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDrainKillReachesGroup upgrades away from a CMD that ignores SIGTERM
// and has a child of its own: the SIGKILL at the end of the drain goes to
// the whole process group, the child included.
func TestDrainKillReachesGroup(t *testing.T) {
	testproc.CheckGoroutines(t)
	for _, reap := range []bool{false, true} {
		t.Run(map[bool]string{false: "wait", true: "reaper"}[reap], func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "grandchild")
			args, env := childArgs(t, "family")
			env = append(env, "GRANDCHILD_FILE="+file)
			s, err := New(Config{Args: args, Env: env, Drain: 200 * time.Millisecond, ReapOrphans: reap})
			if err != nil {
				t.Fatal(err)
			}
			running(t, s)
			old := s.PID()
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			grandchild, err := strconv.Atoi(string(b))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = syscall.Kill(grandchild, syscall.SIGKILL) })
			if _, pgrp, _ := procStat(grandchild); pgrp != old {
				t.Fatalf("grandchild %d in process group %d, want CMD's %d", grandchild, pgrp, old)
			}
			if _, err := s.Upgrade(t.Context()); err != nil {
				t.Fatal(err)
			}
			// The old CMD ignores SIGTERM and is killed after Drain;
			// its child must go with it (gone, or a zombie nobody reaped).
			deadline := time.Now().Add(20 * time.Second)
			for {
				st, _, ok := procStat(grandchild)
				if !ok || st == "Z" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("grandchild %d (state %s) survived the drain SIGKILL of CMD %d", grandchild, st, old)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

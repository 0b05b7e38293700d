//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/control"
	"github.com/batonhq/baton/internal/rawhttp"
	"github.com/batonhq/baton/internal/testproc"
)

// pyChild returns the Python server of testdata/pychild, which reads
// LISTEN_FDS and sends READY=1 with nothing but Python's socket module.
func pyChild(t *testing.T) string {
	t.Helper()
	testproc.LookPath(t, "python3")
	p, err := filepath.Abs("testdata/pychild/pychild.py")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRunPoolRollingUpgrades runs 4 workers under the baton binary, a
// go-systemd child and a Python one, through rolling upgrades while
// keep-alive and new-connection clients hit them: no request fails, every
// reload replaces every worker, and baton never has more than 4+1 CMDs
// (sampled from /proc meanwhile).
func TestRunPoolRollingUpgrades(t *testing.T) {
	reloads := testproc.Rounds(12, 100)
	const workers, surge = 4, 1
	for _, tt := range []struct {
		name  string
		build func(*testing.T) string
	}{{name: "go-systemd", build: buildGoChild}, {name: "python", build: pyChild}} {
		t.Run(tt.name, func(t *testing.T) {
			bin := tt.build(t)
			addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
			s := startRun(t, exec.Command(batonBin, "run", "--quiet", "--workers", strconv.Itoa(workers), "--max-surge", strconv.Itoa(surge),
				"--listen", "http=tcp://"+addr, "--", bin), "http://"+addr+"/")
			baton := s.cmd.Process.Pid
			awaitPool(t, baton, "the first workers", func(runStatusJSON) bool { return poolVersions(t, baton)[0] == workers })
			peak := testproc.PeakChildren(t, baton)
			l := rawhttp.StartLoad(addr, 8, halfKeepAlive)
			defer l.Stop()
			for i := range reloads {
				l.Await(20)
				ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
				_, err := control.Reload(ctx, baton)
				cancel()
				if err != nil {
					l.Stop()
					t.Fatalf("reload %d: %v\n%s", i+1, err, s.stderr)
				}
				if v := poolVersions(t, baton); len(v) != 1 || v[i+1] != workers {
					t.Fatalf("after reload %d the serving workers' versions are %v, want %d of %d", i+1, v, workers, i+1)
				}
			}
			l.Await(20)
			l.Stop()
			most := peak()
			t.Logf("%d rolling reloads of %d workers: %d requests, %d failed; most CMDs at once %d (draining included)", reloads, workers, l.OK.Load(), l.Failed.Load(), most)
			if l.Failed.Load() != 0 {
				t.Errorf("%d requests failed, first: %v", l.Failed.Load(), l.Errors())
			}
			// Draining workers are not held against --max-surge (they
			// accept nothing and are not waited for): the bound is on
			// those serving or starting.
			if p := poolStatusOf(t, baton).Pool.PeakServing; p != workers+surge {
				t.Errorf("%d CMDs serving or starting at once, want %d", p, workers+surge)
			}
		})
	}
}

// TestRunPoolFailedRestartResize: a new worker that fails stops the
// roll-out with the old workers serving (reload exits 1); a killed worker
// is started again and counted; SIGTTIN and SIGTTOU resize the pool; and
// `baton status` lists the workers.
func TestRunPoolFailedRestartResize(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "server")
	good, err := os.ReadFile(buildGoChild(t))
	if err != nil {
		t.Fatal(err)
	}
	testproc.InstallContent(t, bin, good)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	s := startRun(t, exec.Command(batonBin, "run", "--workers", "3", "--listen", "http=tcp://"+addr, "--", bin), "http://"+addr+"/")
	bpid := s.cmd.Process.Pid
	awaitPool(t, bpid, "the first workers", func(runStatusJSON) bool { return poolVersions(t, bpid)[0] == 3 })
	l := rawhttp.StartLoad(addr, 4, halfKeepAlive)
	defer l.Stop()

	testproc.InstallContent(t, bin, []byte("#!/bin/sh\nexit 3\n"))
	r := reload(t, "--pid", strconv.Itoa(bpid))
	if r.code != 1 || !strings.Contains(r.stderr, "child exited with exit status 3") {
		t.Errorf("reload to a failing version = %d %q, want 1", r.code, r.stderr)
	}
	if v := poolVersions(t, bpid); len(v) != 1 || v[0] != 3 {
		t.Errorf("after the failed roll-out the serving versions are %v, want the 3 old workers", v)
	}
	testproc.InstallContent(t, bin, good)
	l.Await(50)
	l.Finish(t, "the load")

	// (No load now: the SIGKILL would cut what the killed worker has.)
	st := poolStatusOf(t, bpid)
	victim := st.Children[1].PID
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	awaitPool(t, bpid, "the restart", func(st runStatusJSON) bool { return st.Pool.Restarts == 1 && len(st.Children) == 3 })
	if v := poolVersions(t, bpid); len(v) != 1 || v[0] != 3 {
		t.Errorf("after the restart the serving versions are %v, want 3 of version 0", v)
	}
	l = rawhttp.StartLoad(addr, 4, halfKeepAlive)

	for _, step := range []struct {
		sig  syscall.Signal
		want int
	}{{syscall.SIGTTIN, 4}, {syscall.SIGTTIN, 5}, {syscall.SIGTTOU, 4}, {syscall.SIGTTOU, 3}, {syscall.SIGTTOU, 2}} {
		if err := syscall.Kill(bpid, step.sig); err != nil {
			t.Fatal(err)
		}
		awaitPool(t, bpid, fmt.Sprintf("%d workers after %s", step.want, step.sig), func(st runStatusJSON) bool {
			return st.Pool.Workers == step.want && len(st.Children) == step.want && len(testproc.Children(bpid)) == step.want
		})
	}
	l.Await(50)
	l.Finish(t, "while resizing")
	r = baton(t, "status", "--pid", strconv.Itoa(bpid))
	if r.code != 0 || !strings.Contains(r.stdout, "WORKER  PID") || !strings.Contains(r.stdout, "workers 2 (max surge 1), exits 1, restarts 1") {
		t.Errorf("status table: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("baton status:\n%s", r.stdout)

	// SIGTERM stops every worker; baton exits with their status.
	last := poolStatusOf(t, bpid)
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := s.exitCode(t); code != 0 {
		t.Errorf("baton run --workers exited %d after SIGTERM, want 0\n%s", code, s.stderr)
	}
	for _, c := range last.Children {
		testproc.WaitGone(t, c.PID)
	}
}

// runStatusJSON is what the tests read of `baton status --json` of baton run.
type runStatusJSON struct {
	Children []runChildJSON `json:"children"`
	Pool     struct {
		Workers, Restarts int
		WorkerExits       int `json:"worker_exits"`
		PeakServing       int `json:"peak_serving"`
	} `json:"pool"`
	Upgrades []struct {
		Outcome, Reason string
	} `json:"upgrades"`
	Counters struct {
		RolledBack int `json:"upgrades_rolled_back"`
	} `json:"counters"`
}

// runChildJSON is one CMD in `baton status --json`.
type runChildJSON struct {
	PID, Worker, Version, Restarts int
	State                          string
}

func poolStatusOf(t *testing.T, pid int) runStatusJSON {
	t.Helper()
	r := baton(t, "status", "--pid", strconv.Itoa(pid), "--json")
	var st runStatusJSON
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || r.code != 0 {
		t.Fatalf("status --json: %d %q %s: %v", r.code, r.stdout, r.stderr, err)
	}
	return st
}

// awaitPool polls `baton status` until cond holds, for at most 30 s.
func awaitPool(t *testing.T, pid int, what string, cond func(runStatusJSON) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := poolStatusOf(t, pid)
		if cond(st) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 30s: %+v", what, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// poolVersions counts baton run's serving workers by version.
func poolVersions(t *testing.T, pid int) map[int]int {
	t.Helper()
	v := map[int]int{}
	for _, c := range poolStatusOf(t, pid).Children {
		if c.State == "serving" {
			v[c.Version]++
		}
	}
	return v
}

//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testproc"
)

// buildExample builds examples/http into dir/http.
func buildExample(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "http")
	if out, err := exec.Command("go", "build", "-o", bin, "../../examples/http").CombinedOutput(); err != nil {
		t.Fatalf("go build examples/http: %v\n%s", err, out)
	}
	return bin
}

// served is a `baton run` process under test.
type served struct {
	cmd    *exec.Cmd
	url    string
	stderr *testproc.Buffer
	done   chan struct{}
	err    error
}

// startRun starts `baton run ARGS` (binary, environment) and waits until
// url answers and, when cmd is baton itself, until baton has seen its
// CMD ready.
func startRun(t *testing.T, cmd *exec.Cmd, url string) *served {
	t.Helper()
	s := &served{cmd: cmd, url: url, stderr: &testproc.Buffer{}, done: make(chan struct{})}
	cmd.Stderr = s.stderr
	// CMDs share baton's stderr: if one outlived baton, Wait would wait
	// for it.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.err = cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM) // baton stops its CMDs
		select {
		case <-s.done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-s.done
		}
	})
	for {
		if _, err := s.get(); err == nil {
			break
		}
		select {
		case <-s.done:
			t.Fatalf("baton run exited before serving: %v\n%s", s.err, s.stderr)
		case <-time.After(10 * time.Millisecond):
		}
	}
	// A CMD may answer before it says READY=1; until baton has seen that,
	// a reload is refused as a first start still in progress. (Through a
	// wrapper such as unshare, baton is not cmd's process.)
	if cmd.Path == batonBin {
		awaitPool(t, cmd.Process.Pid, "CMD ready", func(st runStatusJSON) bool {
			return slices.ContainsFunc(st.Children, func(c runChildJSON) bool { return c.State == "serving" })
		})
	}
	return s
}

// get returns the X-Pid of one response.
func (s *served) get() (int, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(s.url)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return strconv.Atoi(resp.Header.Get("X-Pid"))
}

// waitFor returns once pid answers.
func (s *served) waitFor(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := s.get()
		if err == nil && got == pid {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d does not answer (last answer from %d, %v)", pid, got, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// exitCode waits for baton run to exit and returns its status.
func (s *served) exitCode(t *testing.T) int {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatal("baton run did not exit")
	}
	var ee *exec.ExitError
	if errors.As(s.err, &ee) {
		return ee.ExitCode()
	}
	if s.err != nil {
		t.Fatal(s.err)
	}
	return 0
}

func reload(t *testing.T, args ...string) result {
	t.Helper()
	return baton(t, append([]string{"reload"}, args...)...)
}

func TestRunAndReload(t *testing.T) {
	testproc.CheckFDs(t)
	dir := t.TempDir()
	bin := buildExample(t, dir)
	good, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	s := startRun(t, exec.Command(batonBin, "run", "--drain", "10s", "--listen", "http=tcp://"+addr, "--", bin, "-listen", addr), "http://"+addr+"/")
	baton := strconv.Itoa(s.cmd.Process.Pid)
	serving, err := s.get()
	if err != nil {
		t.Fatal(err)
	}
	// CMD leads a process group of its own: a terminal's Ctrl-C for
	// baton's group reaches it only as the signal baton forwards.
	if got := pgrpOf(t, serving); got != serving || got == pgrpOf(t, s.cmd.Process.Pid) {
		t.Errorf("CMD %d in process group %d, want its own (baton's is %d)", serving, got, pgrpOf(t, s.cmd.Process.Pid))
	}

	t.Run("success", func(t *testing.T) {
		r := reload(t, "--pid", baton)
		pid, err := strconv.Atoi(strings.TrimSpace(r.stdout))
		if r.code != 0 || err != nil {
			t.Fatalf("baton reload = %d %q %q, want 0 and a pid", r.code, r.stdout, r.stderr)
		}
		if pid == serving {
			t.Fatalf("reload answered the old pid %d", pid)
		}
		// The old process may accept a last connection while it stops.
		s.waitFor(t, pid)
		serving = pid
	})
	t.Run("pidfile and json", func(t *testing.T) {
		pf := filepath.Join(t.TempDir(), "pid")
		if err := os.WriteFile(pf, []byte(baton+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		r := reload(t, "--pidfile", pf, "--json")
		var out reloadJSON
		if err := json.Unmarshal([]byte(r.stdout), &out); r.code != 0 || err != nil || out.PID == 0 || out.PID == serving {
			t.Fatalf("baton reload --json = %d %q %q", r.code, r.stdout, r.stderr)
		}
		s.waitFor(t, out.PID)
		serving = out.PID
	})
	failures := []struct {
		name    string
		content []byte // nil: remove the binary
		code    int
		want    string
	}{
		{name: "child exits", content: []byte("#!/bin/sh\nexit 3\n"), code: 1, want: "child exited with exit status 3"},
		{name: "binary missing", code: 1, want: "binary missing"},
	}
	for _, tt := range failures {
		t.Run(tt.name, func(t *testing.T) {
			if tt.content == nil {
				if err := os.Remove(bin); err != nil {
					t.Fatal(err)
				}
			} else {
				testproc.InstallContent(t, bin, tt.content)
			}
			defer testproc.InstallContent(t, bin, good)
			r := reload(t, "--pid", baton)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) || r.stdout != "" {
				t.Errorf("baton reload = %d %q %q; want %d saying %q", r.code, r.stdout, r.stderr, tt.code, tt.want)
			}
			// The process that served before the last successful reload
			// may still take a last connection while it stops.
			s.waitFor(t, serving)
		})
	}
	t.Run("in progress", func(t *testing.T) {
		// A new version that never says READY=1 keeps the first reload
		// waiting; the second one is refused meanwhile.
		testproc.InstallContent(t, bin, []byte("#!/bin/sh\nexec sleep 60\n"))
		first := exec.Command(batonBin, "reload", "--pid", baton)
		wait, err := startCmd(first)
		if err != nil {
			t.Fatal(err)
		}
		sleeper := 0
		for sleeper == 0 {
			sleeper = childNamed(t, s.cmd.Process.Pid, "sleep")
			time.Sleep(5 * time.Millisecond)
		}
		r := reload(t, "--pid", baton)
		if r.code != exitInProgress || strings.Count(r.stderr, "upgrade already in progress") != 1 {
			t.Errorf("second reload = %d %q, want %d: in progress (said once)", r.code, r.stderr, exitInProgress)
		}
		testproc.InstallContent(t, bin, good)
		_ = syscall.Kill(sleeper, syscall.SIGKILL)
		r, err = wait()
		if err != nil || r.code != 1 || !strings.Contains(r.stderr, "killed by signal") {
			t.Errorf("first reload = %d %q %v, want 1: killed", r.code, r.stderr, err)
		}
	})
	t.Run("no server", func(t *testing.T) {
		r := reload(t, "--pid", strconv.Itoa(os.Getpid()))
		if r.code != exitNoServer || !strings.Contains(r.stderr, "no baton control socket") {
			t.Errorf("reload of the test process = %d %q, want %d", r.code, r.stderr, exitNoServer)
		}
	})
	t.Run("permission denied", func(t *testing.T) {
		testproc.RequireRoot(t)
		shared, err := os.MkdirTemp("", "baton-shared-") // t.TempDir's parent is 0700
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(shared)
		if err := os.Chmod(shared, 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(batonBin)
		if err != nil {
			t.Fatal(err)
		}
		other := filepath.Join(shared, "baton")
		if err := os.WriteFile(other, b, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(other, "reload", "--pid", baton)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		r := batonCmd(t, cmd)
		if r.code != exitDenied || !strings.Contains(r.stderr, "permission denied") {
			t.Errorf("reload as uid 65534 = %d %q, want %d: permission denied", r.code, r.stderr, exitDenied)
		}
	})

	// SIGTERM goes to the serving process; baton exits with its status.
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := s.exitCode(t); code != 0 {
		t.Errorf("baton run exited %d after SIGTERM, want 0 (the server's status)\n%s", code, s.stderr)
	}
}

// childNamed returns the pid of a child of ppid whose command is comm, or 0.
func childNamed(t *testing.T, ppid int, comm string) int {
	t.Helper()
	for _, pid := range children(t, ppid) {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && strings.TrimSpace(string(b)) == comm {
			return pid
		}
	}
	return 0
}

// pgrpOf returns the process group of pid from /proc/PID/stat.
func pgrpOf(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// pid (comm) state ppid pgrp ...
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	if len(f) < 3 {
		t.Fatalf("/proc/%d/stat: %q", pid, b)
	}
	pgrp, err := strconv.Atoi(f[2])
	if err != nil {
		t.Fatal(err)
	}
	return pgrp
}

// children lists the children of ppid and, with zombies, those not reaped.
func children(t *testing.T, ppid int) []int {
	t.Helper()
	kids, _ := procChildren(ppid)
	return kids
}

func procChildren(ppid int) (kids, zombies []int) {
	alive, zombies := testproc.ChildProcs(ppid)
	return append(alive, zombies...), zombies
}

func TestRunSelectsInheritedSocket(t *testing.T) {
	sa := testproc.LookPath(t, "systemd-socket-activate")
	bin := buildExample(t, t.TempDir())
	port := freePort(t, "tcp")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	// systemd hands baton a socket named "web"; baton passes it on as
	// "http", the name the example asks for.
	cmd := exec.Command(sa, "-l", addr, "--fdname=web", batonBin, "run",
		"--listen", "http=tcp://"+addr, "--", bin, "-listen", "127.0.0.1:1")
	s := startRun(t, cmd, "http://"+addr+"/")
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = s.exitCode(t)
	if !strings.Contains(s.stderr.String(), "name=http addr=tcp://"+addr) {
		t.Errorf("baton did not pass the inherited socket on as http:\n%s", s.stderr)
	}
}

// TestRunAsPID1 runs baton as PID 1 of a new pid namespace: a grandchild
// orphaned inside is reaped by baton, and baton exits with CMD's status.
func TestRunAsPID1(t *testing.T) {
	testproc.RequireRoot(t)
	unshare := testproc.LookPath(t, "unshare")
	bin := buildExample(t, t.TempDir())
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	// The shell starts a background sleep in a subshell that exits at
	// once: the sleep is orphaned and re-parented to PID 1, baton.
	script := fmt.Sprintf("(sleep 0.2 &); exec %s -listen %s", bin, addr)
	cmd := exec.Command(unshare, "--pid", "--fork", "--kill-child", batonBin, "run",
		"--listen", "http=tcp://"+addr, "--", "/bin/sh", "-c", script)
	s := startRun(t, cmd, "http://"+addr+"/")
	kids := children(t, s.cmd.Process.Pid)
	if len(kids) != 1 {
		t.Fatalf("unshare has children %v, want baton alone", kids)
	}
	pid1 := kids[0]
	// Until the orphan is gone, baton has it (or its zombie) as a child.
	deadline := time.Now().Add(20 * time.Second)
	for {
		all, zombies := procChildren(pid1)
		if len(all) == 1 && len(zombies) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("baton (pid %d) still has children %v, zombies %v", pid1, all, zombies)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// SIGHUP from outside the namespace: a new CMD (and a new orphan,
	// reaped too).
	first := childNamed(t, pid1, "http")
	if err := syscall.Kill(pid1, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for {
		all, zombies := procChildren(pid1)
		now := childNamed(t, pid1, "http")
		if now != 0 && now != first && len(all) == 1 && len(zombies) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after SIGHUP baton (pid %d) has children %v, zombies %v; http %d (was %d)", pid1, all, zombies, now, first)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Killing CMD: baton exits with its status, 128+9. (Its pid as the
	// test sees it: X-Pid is the one inside the namespace.)
	serving := childNamed(t, pid1, "http")
	if serving == 0 {
		t.Fatalf("no child named http under baton (pid %d)", pid1)
	}
	if err := syscall.Kill(serving, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := s.exitCode(t); code != 128+9 {
		t.Errorf("baton as PID 1 exited %d, want 137 (CMD killed by SIGKILL)\n%s", code, s.stderr)
	}
}

// TestDemoJSON runs baton demo as installed: a copy of the binary in a
// directory of its own, run from there with no go command in PATH (before,
// it needed a checkout: "run it inside the baton repository"). It first
// restarts the server the naive way under the same load, then upgrades it.
func TestDemoJSON(t *testing.T) {
	dir := t.TempDir()
	installed := filepath.Join(dir, "baton")
	b, err := os.ReadFile(batonBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(installed, b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"handoff", "run"} {
		t.Run(mode, func(t *testing.T) {
			cmd := exec.Command(installed, "demo", "--json", "--mode", mode, "--upgrades", "4", "--clients", "4")
			cmd.Dir = dir
			cmd.Env = []string{"PATH=/nonexistent", "HOME=" + dir}
			r := batonCmd(t, cmd)
			var res demoResult
			if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
				t.Fatalf("demo --json printed %q: %v\nstderr:\n%s", r.stdout, err, r.stderr)
			}
			if r.code != 0 || !res.OK || res.Mode != mode || res.Failed != 0 || res.Requests == 0 || res.Upgrades != 4 ||
				res.UpgradesFailed != 0 || !res.BrokenRolled || !strings.Contains(res.BrokenError, "exit status 3") {
				t.Errorf("demo = %d %+v\nstderr:\n%s", r.code, res, r.stderr)
			}
			seen := map[int]bool{}
			for _, p := range res.PIDs {
				seen[p] = true
			}
			if len(res.PIDs) != 5 || len(seen) != 5 {
				t.Errorf("serving pids %v, want 5 distinct", res.PIDs)
			}
			if h := res.HandoffMS; h.N != 4 || h.Min > h.Median || h.Median > h.Max {
				t.Errorf("handoff latencies %+v are not a summary of 4", h)
			}
			// The naive pass: as many stop-and-starts, each a new process,
			// the same load (its failures are counted, not asserted:
			// how many connections a restart refuses is timing).
			if n := res.Naive; n.Restarts != 4 || n.Requests == 0 || n.Requests < n.Failed {
				t.Errorf("naive pass %+v, want 4 restarts under load", n)
			}
			// A timeline per upgrade and per naive restart: responses per
			// 10 ms by process, whose counts add up to no more than the
			// requests.
			if len(res.Timelines) != 4+4 {
				t.Fatalf("%d timelines, want 8", len(res.Timelines))
			}
			for _, tl := range res.Timelines {
				if len(tl.Rows) == 0 {
					t.Errorf("timeline %q has no rows", tl.What)
				}
			}
		})
	}
}

// TestDemoText: the text output says what the naive restart lost next to
// what baton lost, and draws each upgrade's timeline.
func TestDemoText(t *testing.T) {
	r := baton(t, "demo", "--upgrades", "2", "--clients", "4")
	if r.code != 0 {
		t.Fatalf("demo: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"naive restart: ", " refused or failed; baton: 0", "responses per 10 ms", "upgrade 2"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, r.stdout)
		}
	}
}

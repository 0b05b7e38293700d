//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/control"
	"github.com/batonhq/baton/internal/testproc"
)

// hang is a new version that never says READY=1: its upgrade stays in
// flight until something ends it.
var hang = []byte("#!/bin/sh\nexec sleep 60\n")

// hanging is a `baton run` with an upgrade in flight that hangs.
type hanging struct {
	*served
	bin     string // CMD's binary
	reload  *exec.Cmd
	wait    func() (result, error) // waits for reload
	sleeper int                    // the new CMD
}

// runHanging starts `baton run` with a copy of good, then replaces the
// binary by one that hangs and starts `baton reload ARGS` against it. It
// returns once the hanging new CMD runs.
func runHanging(t *testing.T, good []byte, args ...string) *hanging {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "http")
	testproc.InstallContent(t, bin, good)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	s := startRun(t, exec.Command(batonBin, "run", "--quiet", "--listen", "http=tcp://"+addr, "--", bin, "-listen", addr), "http://"+addr+"/")
	testproc.InstallContent(t, bin, hang)
	reload := exec.Command(batonBin, append([]string{"reload", "--pid", strconv.Itoa(s.cmd.Process.Pid), "--timeout", "1m"}, args...)...)
	wait, err := startCmd(reload)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reload.Process.Kill(); _, _ = wait() })
	sleeper := 0
	deadline := time.Now().Add(30 * time.Second)
	for sleeper == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the new CMD did not start")
		}
		time.Sleep(5 * time.Millisecond)
		sleeper = childNamed(t, s.cmd.Process.Pid, "sleep")
	}
	return &hanging{served: s, bin: bin, reload: reload, wait: wait, sleeper: sleeper}
}

// TestReloadDuringStop: a stop of the service while `baton reload` waits
// abandons the upgrade, and baton reload exits 0 saying so, also when it
// gets the stop's SIGTERM itself (systemd sends it to ExecReload= too); a
// status other than 0 would leave the stopped unit failed.
func TestReloadDuringStop(t *testing.T) {
	testproc.CheckFDs(t)
	good, err := os.ReadFile(buildExample(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name          string
		json          bool
		sigtermReload bool // SIGTERM to baton reload first, then to the server
	}{
		{name: "server stops"},
		{name: "server stops, json", json: true},
		{name: "both get SIGTERM", sigtermReload: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var args []string
			if tt.json {
				args = append(args, "--json")
			}
			h := runHanging(t, good, args...)
			if tt.sigtermReload {
				// baton reload must go on waiting for the answer.
				if err := h.reload.Process.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
			}
			if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			r, err := h.wait()
			if err != nil || r.code != 0 || !strings.Contains(r.stderr, "upgrade abandoned: the service is stopping") {
				t.Errorf("baton reload = %d %q %q %v, want 0: upgrade abandoned", r.code, r.stdout, r.stderr, err)
			}
			if tt.json {
				var out reloadJSON
				if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.Code != control.CodeStopping || out.Error != "" {
					t.Errorf("baton reload --json printed %q, want code %q", r.stdout, control.CodeStopping)
				}
			} else if r.stdout != "" {
				t.Errorf("baton reload printed %q on stdout, want nothing", r.stdout)
			}
			if code := h.exitCode(t); code != 0 {
				t.Errorf("baton run exited %d after SIGTERM, want 0\n%s", code, h.stderr)
			}
		})
	}
}

// TestReloadInterrupted: Ctrl-C gives up waiting (status 130); the upgrade
// goes on in the server and fails there when its new CMD dies.
func TestReloadInterrupted(t *testing.T) {
	testproc.CheckFDs(t)
	good, err := os.ReadFile(buildExample(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	h := runHanging(t, good)
	serving, err := h.get()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.reload.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	r, err := h.wait()
	if err != nil || r.code != exitInterrupted || !strings.Contains(r.stderr, "goes on with the upgrade") {
		t.Errorf("baton reload after SIGINT = %d %q %v, want %d: the upgrade goes on", r.code, r.stderr, err, exitInterrupted)
	}
	// Still in flight in the server.
	pid := strconv.Itoa(h.cmd.Process.Pid)
	if r := baton(t, "reload", "--pid", pid); r.code != exitInProgress {
		t.Errorf("reload after the interrupted one = %d %q, want %d: in progress", r.code, r.stderr, exitInProgress)
	}
	// The new CMD dies: the upgrade fails in the server, which goes on
	// serving with the old one and takes the next reload.
	if err := syscall.Kill(h.sleeper, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.waitFor(t, serving)
	testproc.InstallContent(t, h.bin, good)
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := baton(t, "reload", "--pid", pid)
		if r.code == exitInProgress && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond) // the failed upgrade is still being wound up
			continue
		}
		next, err := strconv.Atoi(strings.TrimSpace(r.stdout))
		if r.code != 0 || err != nil || next == serving {
			t.Fatalf("reload after the failed one = %d %q %q, want 0 and a new pid", r.code, r.stdout, r.stderr)
		}
		h.waitFor(t, next)
		break
	}
}

func init() { testproc.Register("silent-server", silentServer) }

// silentServer is a control server that never answers: it says "listening",
// then "request" when one arrives, and exits on SIGTERM without a reply.
func silentServer() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	_, err := control.Listen(func(ctx context.Context) (int, error) {
		fmt.Println("request")
		<-ctx.Done()
		return 0, ctx.Err()
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("listening")
	<-sigs
	os.Exit(0) // the connection closes unanswered
}

// TestReloadServerExits: a server that exits without an answer was
// stopping when baton reload got SIGTERM too (status 0); otherwise there
// is no outcome (status 5).
func TestReloadServerExits(t *testing.T) {
	tests := []struct {
		name          string
		sigtermReload bool
		code          int
		want          string
	}{
		{name: "both get SIGTERM", sigtermReload: true, code: 0, want: "upgrade abandoned: the service is stopping"},
		{name: "server alone", code: exitNoServer, want: "connection closed without a reply"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			testproc.CheckFDs(t)
			server := testproc.Command(t, "silent-server")
			stdout, err := server.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := server.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = server.Process.Kill(); _ = server.Wait() }()
			lines := bufio.NewScanner(stdout)
			expect := func(want string) {
				t.Helper()
				if !lines.Scan() || lines.Text() != want {
					t.Fatalf("server said %q, %v; want %q", lines.Text(), lines.Err(), want)
				}
			}
			expect("listening")
			reload := exec.Command(batonBin, "reload", "--pid", strconv.Itoa(server.Process.Pid), "--timeout", "1m")
			wait, err := startCmd(reload)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = reload.Process.Kill(); _, _ = wait() }()
			expect("request")
			if tt.sigtermReload {
				if err := reload.Process.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
			}
			if err := server.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			r, err := wait()
			if err != nil || r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("baton reload = %d %q %v, want %d: %q", r.code, r.stderr, err, tt.code, tt.want)
			}
		})
	}
}

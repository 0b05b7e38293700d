//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testproc"
)

func TestRunReloadDemoUsage(t *testing.T) {
	tests := []usageCase{
		{args: []string{"run"}, code: 2, stderr: "no command", quietOut: true},
		{args: []string{"run", "--ready=maybe", "--", "true"}, code: 2, stderr: `--ready="maybe"`, quietOut: true},
		{args: []string{"run", "--listen", "a:b=tcp://:1", "--", "true"}, code: 2, stderr: "without ':'", quietOut: true},
		{args: []string{"run", "--listen", "a=http://x", "--", "true"}, code: 2, stderr: "unknown scheme", quietOut: true},
		{args: []string{"run", "--listen", "a", "--", "true"}, code: 2, stderr: "want NAME=URL", quietOut: true},
		{args: []string{"run", "--stop-delay", "-1s", "--", "true"}, code: 2, stderr: "--stop-delay -1s", quietOut: true},
		{args: []string{"run", "--max-draining", "-1", "--", "true"}, code: 2, stderr: "--max-draining -1", quietOut: true},
		{args: []string{"run", "--workers", "0", "--", "true"}, code: 2, stderr: "--workers 0 --max-surge 1: want 1 or more", quietOut: true},
		{args: []string{"run", "--workers", "2", "--max-surge", "0", "--", "true"}, code: 2, stderr: "--workers 2 --max-surge 0", quietOut: true},
		{args: []string{"run", "--watch-window", "-1s", "--", "true"}, code: 2, stderr: "--watch-window -1s", quietOut: true},
		{args: []string{"run", "--watch-window", "1s", "--workers", "2", "--", "true"}, code: 2, stderr: "--watch-window with --workers 2", quietOut: true},
		{args: []string{"run", "-h"}, code: 0, stdout: "--workers N runs a pool", quietError: true},
		{args: []string{"reload", "-h"}, code: 0, stdout: "--wait-window", quietError: true},
		{args: []string{"run", "-h"}, code: 0, stdout: "usage: baton run", quietError: true},
		{args: []string{"reload"}, code: 2, stderr: "want --pid PID or --pidfile FILE", quietOut: true},
		{args: []string{"reload", "--pid", "1", "--pidfile", "x"}, code: 2, stderr: "not both", quietOut: true},
		{args: []string{"reload", "-h"}, code: 0, stdout: "ExecReload=", quietError: true},
		{args: []string{"demo", "--mode", "x"}, code: 2, stderr: `--mode="x"`, quietOut: true},
		{args: []string{"demo", "extra"}, code: 2, stderr: `unexpected argument "extra"`, quietOut: true},
		{args: []string{"help", "demo"}, code: 0, stdout: "go run ./cmd/baton demo", quietError: true},
	}
	for _, tt := range tests {
		r := baton(t, tt.args...)
		if r.code != tt.code || !strings.Contains(r.stdout, tt.stdout) || !strings.Contains(r.stderr, tt.stderr) ||
			(tt.quietOut && r.stdout != "") || (tt.quietError && r.stderr != "") {
			t.Errorf("baton %q = %d\nstdout %q\nstderr %q\nwant %d, stdout %q, stderr %q", tt.args, r.code, r.stdout, r.stderr, tt.code, tt.stdout, tt.stderr)
		}
	}
}

// TestRunHandsSockets runs `baton fds` as CMD: what it prints is what
// baton run handed over (names, kinds, addresses, and LISTEN_PID right,
// or package activation would see nothing).
func TestRunHandsSockets(t *testing.T) {
	testproc.CheckFDs(t)
	dir := t.TempDir()
	tcp := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	udp := fmt.Sprintf("127.0.0.1:%d", freePort(t, "udp"))
	sock := filepath.Join(dir, "s.sock")
	// A socket left by a killed baton: nothing listens there.
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	_ = stale.Close()
	r := baton(t, "run", "--ready=exec", "--ready-timeout", "10s",
		"--listen", "web=tcp://"+tcp, "--listen", "dns=udp://"+udp, "--listen", "local=unix:"+sock,
		"--", batonBin, "fds", "--json")
	// baton fds exits at once: a failed first start, exit 1.
	if r.code != 1 || !strings.Contains(r.stderr, "child exited with exit status 0 before ready") {
		t.Errorf("baton run = %d, stderr:\n%s", r.code, r.stderr)
	}
	var got []string
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	for sc.Scan() {
		var f fdJSON
		if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
			t.Fatalf("%q: %v", sc.Text(), err)
		}
		got = append(got, fmt.Sprintf("%d %s %s %v %s", f.FD, f.Name, f.Kind, f.Listening, f.Addr))
	}
	want := []string{
		"3 web tcp true " + tcp,
		"4 dns udp false " + udp,
		"5 local unix true " + sock,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("CMD was handed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("baton left its unix socket %s behind: %v", sock, err)
	}
}

// TestRunWatch replaces CMD's binary by rename: baton upgrades by itself.
func TestRunWatch(t *testing.T) {
	dir := t.TempDir()
	bin := buildGoChild(t)
	good, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	served := filepath.Join(dir, "server")
	testproc.InstallContent(t, served, good)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	s := startRun(t, exec.Command(batonBin, "run", "--watch", served, "--watch-interval", "20ms",
		"--listen", "http=tcp://"+addr, "--", served), "http://"+addr+"/")
	first, err := s.get()
	if err != nil {
		t.Fatal(err)
	}
	testproc.InstallContent(t, served, good) // a rebuilt binary: a new inode
	for {
		pid, err := s.get()
		if err != nil {
			t.Fatal(err)
		}
		if pid != first {
			break
		}
		select {
		case <-s.done:
			t.Fatalf("baton exited: %v\n%s", s.err, s.stderr)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestRunReadyExecTimeout: --ready exec makes a CMD ready after 2s of
// running unless --ready-timeout says otherwise; --ready notify keeps the
// 90s default.
func TestRunReadyExecTimeout(t *testing.T) {
	tests := []struct {
		args []string
		want time.Duration
	}{
		{[]string{"--ready", "exec"}, execReadyTimeout},
		{[]string{"--ready", "exec", "--ready-timeout", "500ms"}, 500 * time.Millisecond},
		{[]string{"--ready-timeout", "90s", "--ready", "exec"}, 90 * time.Second},
		{nil, 90 * time.Second},
	}
	for _, tt := range tests {
		c := newRunCmd(stdio{Stdout: new(strings.Builder), Stderr: new(strings.Builder)}).(*runCommand)
		if err := c.flags.parse(append(tt.args, "--", "true")); err != nil {
			t.Fatal(err)
		}
		cfg, err := c.config(c.flags.Args())
		if err != nil {
			t.Fatal(err)
		}
		if cfg.ReadyTimeout != tt.want {
			t.Errorf("%q: ReadyTimeout %s, want %s", tt.args, cfg.ReadyTimeout, tt.want)
		}
	}
}

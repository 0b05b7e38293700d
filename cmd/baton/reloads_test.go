//go:build linux

package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/control"
	"github.com/batonhq/baton/internal/rawhttp"
	"github.com/batonhq/baton/internal/testproc"
)

// buildGoChild builds testdata/gochild (go-systemd's activation and daemon).
func buildGoChild(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gochild")
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/gochild").CombinedOutput(); err != nil {
		t.Fatalf("go build testdata/gochild: %v\n%s", err, out)
	}
	return bin
}

// buildCChild compiles the C server that uses libsystemd's sd_listen_fds
// and sd_notify.
func buildCChild(t *testing.T) string {
	t.Helper()
	gcc := testproc.LookPath(t, "gcc")
	pc := testproc.LookPath(t, "pkg-config")
	flags, err := exec.Command(pc, "--cflags", "--libs", "libsystemd").Output()
	testproc.Require(t, err == nil, "needs libsystemd-dev (pkg-config libsystemd)")
	bin := filepath.Join(t.TempDir(), "cchild")
	args := append([]string{"-O2", "-Wall", "-o", bin, "../../internal/supervisor/testdata/child.c"}, strings.Fields(string(flags))...)
	if out, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	return bin
}

// TestRunReloadsUnderLoad runs a go-systemd child and a libsystemd child
// under the baton binary through 100 reloads each while keep-alive and
// new-connection clients hit them: no request may fail, and every reload
// must give a new pid.
func TestRunReloadsUnderLoad(t *testing.T) {
	const reloads = 100
	tests := []struct {
		name  string
		build func(*testing.T) string
	}{
		{name: "go-systemd", build: buildGoChild},
		{name: "libsystemd", build: buildCChild},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bin := tt.build(t)
			testproc.CheckGoroutines(t)
			addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
			s := startRun(t, exec.Command(batonBin, "run", "--quiet", "--listen", "http=tcp://"+addr, "--", bin), "http://"+addr+"/")
			l := rawhttp.StartLoad(addr, 8, halfKeepAlive)
			seen := map[int]bool{}
			for i := range reloads {
				l.Await(20)
				ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
				pid, err := control.Reload(ctx, s.cmd.Process.Pid)
				cancel()
				if err != nil {
					l.Stop()
					t.Fatalf("reload %d: %v\n%s", i+1, err, s.stderr)
				}
				if seen[pid] {
					t.Errorf("reload %d: pid %d again", i+1, pid)
				}
				seen[pid] = true
			}
			l.Await(20)
			l.Finish(t, fmt.Sprintf("%d reloads", reloads))
		})
	}
}

// halfKeepAlive keeps the connections of every other client alive.
func halfKeepAlive(i int) bool { return i%2 == 0 }

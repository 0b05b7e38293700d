//go:build linux

package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
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
			l := newLoad(addr, 8)
			seen := map[int]bool{}
			for i := range reloads {
				l.await(20)
				ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
				pid, err := control.Reload(ctx, s.cmd.Process.Pid)
				cancel()
				if err != nil {
					l.stop()
					t.Fatalf("reload %d: %v\n%s", i+1, err, s.stderr)
				}
				if seen[pid] {
					t.Errorf("reload %d: pid %d again", i+1, pid)
				}
				seen[pid] = true
			}
			l.await(20)
			l.stop()
			t.Logf("%d reloads, %d requests, %d failed", reloads, l.ok.Load(), l.failed.Load())
			if l.failed.Load() != 0 {
				t.Errorf("%d requests failed, first: %v", l.failed.Load(), l.errs)
			}
		})
	}
}

type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []string
	quit       chan struct{}
	wg         sync.WaitGroup
}

// newLoad runs n clients that never retry (package rawhttp), half of them
// keeping their connection alive, against addr.
func newLoad(addr string, n int) *load {
	l := &load{quit: make(chan struct{})}
	for i := range n {
		c := &rawhttp.Client{Addr: addr, KeepAlive: i%2 == 0}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer c.Close()
			for {
				select {
				case <-l.quit:
					return
				default:
				}
				if _, err := c.Get("/"); err != nil {
					l.failed.Add(1)
					l.mu.Lock()
					if len(l.errs) < 5 {
						l.errs = append(l.errs, err.Error())
					}
					l.mu.Unlock()
					continue
				}
				l.ok.Add(1)
			}
		}()
	}
	return l
}

func (l *load) await(n int64) {
	want := l.ok.Load() + l.failed.Load() + n
	for l.ok.Load()+l.failed.Load() < want {
		time.Sleep(time.Millisecond)
	}
}

func (l *load) stop() {
	close(l.quit)
	l.wg.Wait()
}

//go:build linux

package supervisor

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testproc"
)

// recordingFront is a Front that gives each generation a unix socket of
// its own and records the supervisor's calls, and whether the CMD of the
// generation was still running, and not yet signalled, at Quiesce.
type recordingFront struct {
	t   *testing.T
	dir string
	s   *Supervisor

	mu    sync.Mutex
	calls []string
	files map[int]*os.File
}

func (f *recordingFront) record(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func (f *recordingFront) Sockets(n int) ([]*os.File, error) {
	ln, err := net.Listen("unix", fmt.Sprintf("%s/%d.sock", f.dir, n))
	if err != nil {
		return nil, err
	}
	file, err := ln.(*net.UnixListener).File()
	_ = ln.Close()
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.files[n] = file
	f.mu.Unlock()
	f.record("sockets %d", n)
	return []*os.File{file}, nil
}

func (f *recordingFront) Check(context.Context, int) error { return nil }

func (f *recordingFront) Route(n int) { f.record("route %d", n) }

func (f *recordingFront) Unroute(n int) { f.record("unroute %d", n) }

// Quiesce holds the SIGTERM back a while and looks whether the CMD is
// still there: a CMD signalled before Quiesce returns would be gone.
func (f *recordingFront) Quiesce(_ context.Context, n int) {
	var pid int
	f.s.mu.Lock()
	for _, c := range f.s.byPID {
		if c.n == n {
			pid = c.pid
		}
	}
	f.s.mu.Unlock()
	time.Sleep(300 * time.Millisecond)
	alive := pid != 0 && syscall.Kill(pid, 0) == nil
	f.record("quiesce %d alive=%t", n, alive)
}

func (f *recordingFront) Release(n int) {
	f.mu.Lock()
	file := f.files[n]
	delete(f.files, n)
	f.mu.Unlock()
	if file != nil {
		_ = file.Close()
	}
	f.record("release %d", n)
}

func (f *recordingFront) Shutdown(context.Context) error {
	f.record("shutdown")
	return nil
}

// TestFrontHooks: with a Front, every CMD gets the front's socket of its
// generation, only serving CMDs are routed, a replaced CMD is quiesced
// (and still running) before its SIGTERM, and released once reaped; a stop
// shuts the front down before the CMDs get their signal.
func TestFrontHooks(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	args, env := childArgs(t, "serve")
	f := &recordingFront{t: t, dir: t.TempDir(), files: map[int]*os.File{}}
	s, err := New(Config{Args: args, Env: env, Sockets: []Socket{{Name: "http", File: os.Stdin}}, Front: f, Drain: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f.s = s
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	for s.PID() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	for range 2 {
		if _, err := s.Upgrade(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	// The replaced CMDs are reaped in the background.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		f.mu.Lock()
		n := len(f.calls)
		released := slices.Contains(f.calls, "release 2")
		f.mu.Unlock()
		if released || time.Now().After(deadline) {
			t.Logf("%d calls", n)
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	got := strings.Join(f.calls, "\n")
	f.mu.Unlock()
	// Each replaced CMD: unrouted, then quiesced while alive, then released.
	for _, n := range []int{1, 2} {
		order := []string{fmt.Sprintf("sockets %d", n), fmt.Sprintf("route %d", n), fmt.Sprintf("unroute %d", n), fmt.Sprintf("quiesce %d alive=true", n), fmt.Sprintf("release %d", n)}
		at := -1
		for _, want := range order {
			i := slices.Index(f.calls, want)
			if i <= at {
				t.Fatalf("want %q after %q; calls:\n%s", want, order, got)
			}
			at = i
		}
	}
	// The new one is routed before the old one is unrouted.
	if slices.Index(f.calls, "route 2") > slices.Index(f.calls, "unroute 1") {
		t.Errorf("generation 1 unrouted before 2 was routed:\n%s", got)
	}
	// The stop: the front first, then the last CMD.
	if i, j := slices.Index(f.calls, "shutdown"), slices.Index(f.calls, "release 3"); i < 0 || j < i {
		t.Errorf("want the front shut down before generation 3 ends:\n%s", got)
	}
}

// TestFrontHooksRollback: in a watch window the replaced CMD is unrouted
// (standby), not quiesced; when the new CMD dies within the window the
// old one is routed again, and the new one released.
func TestFrontHooksRollback(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	args, env := childArgs(t)
	f := &recordingFront{t: t, dir: t.TempDir(), files: map[int]*os.File{}}
	s, err := New(Config{Args: args, Env: env, Sockets: []Socket{{Name: "http", File: os.Stdin}}, Front: f, Drain: 10 * time.Second, WatchWindow: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f.s = s
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	for s.PID() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	s.cfg.Args = append(args[:len(args):len(args)], "die-after", "200")
	if _, err := s.Upgrade(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the rollback", func() bool { return s.Stats().RolledBack == 1 })
	waitFor(t, "the release", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return slices.Contains(f.calls, "release 2")
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	calls := slices.Clone(f.calls)
	f.mu.Unlock()
	got := strings.Join(calls, "\n")
	at := -1
	// The cut-over moves both under one lock: the old one to standby,
	// then the new one to serving; a request in between waits for it.
	for _, want := range []string{"route 1", "unroute 1", "route 2", "unroute 2", "release 2", "route 1"} {
		i := slices.Index(calls[at+1:], want)
		if i < 0 {
			t.Fatalf("no %q in order; calls:\n%s", want, got)
		}
		at += 1 + i
	}
	if slices.ContainsFunc(calls[:slices.Index(calls, "release 2")], func(c string) bool { return strings.HasPrefix(c, "quiesce 1") }) {
		t.Errorf("generation 1 quiesced in its watch window:\n%s", got)
	}
}

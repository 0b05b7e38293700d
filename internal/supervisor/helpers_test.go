//go:build linux

package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/batonhq/baton/internal/gochild"
	"github.com/batonhq/baton/internal/rawhttp"
	"github.com/batonhq/baton/internal/testproc"
)

func TestMain(m *testing.M) {
	testproc.Register("go-child", goChild)
	testproc.Main(m)
}

// goChild is internal/gochild's server, as a Go user writes one with
// go-systemd. Its first argument is a mode: serve, exit N, hang,
// noready, die-after MS (serves, then after MS milliseconds drains as on
// SIGTERM and exits with status 3: a crash that loses no request), fail-nth
// FILE N (appends a byte to FILE and exits 3 before serving when FILE then
// holds N bytes: the N-th start fails). $CHILD_LAME_DUCK is the lame-duck
// period (100ms by default).
func goChild() {
	args := testproc.Args()
	mode := "serve"
	if len(args) > 0 {
		mode = args[0]
	}
	if f := os.Getenv("CHILD_FDS_FILE"); f != "" {
		_ = os.WriteFile(f, []byte(strings.Join(openFDs(), " ")), 0o600)
	}
	switch mode {
	case "exit":
		code, _ := strconv.Atoi(args[1])
		os.Exit(code)
	case "hang":
		select {}
	case "family":
		family()
	case "fail-nth":
		f, err := os.OpenFile(args[1], os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			os.Exit(4)
		}
		_, _ = f.Write([]byte{1})
		fi, _ := f.Stat()
		_ = f.Close()
		if n, _ := strconv.Atoi(args[2]); fi.Size() == int64(n) {
			os.Exit(3)
		}
	}
	o := gochild.Options{Name: "go-child", NoReady: mode == "noready"}
	if d, err := time.ParseDuration(os.Getenv("CHILD_LAME_DUCK")); err == nil {
		o.LameDuck = d
	}
	if mode == "die-after" {
		ms, _ := strconv.Atoi(args[1])
		o.Die, o.DieAfter = true, time.Duration(ms)*time.Millisecond
	}
	os.Exit(gochild.Serve(o))
}

// family is a CMD that starts a child of its own (this binary, hanging),
// writes that child's pid to $GRANDCHILD_FILE, becomes ready and ignores
// SIGTERM: only SIGKILL ends it, and only a SIGKILL to its process group
// ends its child too.
func family() {
	signal.Ignore(syscall.SIGTERM)
	exe, err := os.Executable()
	if err != nil {
		os.Exit(3)
	}
	kid := exec.Command(exe, "-test.run=^$", "--", "hang")
	if err := kid.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "go-child: %v\n", err)
		os.Exit(3)
	}
	if err := os.WriteFile(os.Getenv("GRANDCHILD_FILE"), []byte(strconv.Itoa(kid.Process.Pid)), 0o600); err != nil {
		os.Exit(3)
	}
	_, _ = daemon.SdNotify(false, "READY=1")
	select {}
}

func openFDs() []string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var fds []string
	for _, e := range ents {
		// Leave out the runtime's own (cgroup limits, poller) and ReadDir's.
		t, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err == nil && !strings.HasPrefix(t, "/proc/") && !strings.HasPrefix(t, "/sys/fs/cgroup/") && !strings.HasPrefix(t, "anon_inode:") {
			fds = append(fds, e.Name())
		}
	}
	return fds
}

// childArgs returns Args that run the named helper of this test binary.
// (GORACE: under -race a process sleeps a second before it exits, which
// would make every drain look a second long.)
func childArgs(t *testing.T, mode ...string) (args, env []string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{exe, "-test.run=^$", "--"}, mode...),
		append(os.Environ(), testproc.EnvHelper+"=go-child", "GORACE=atexit_sleep_ms=0")
}

// listen binds a loopback TCP socket and returns it as a Socket named http.
func listen(t *testing.T) (Socket, string) {
	t.Helper()
	f, addr := testproc.ListenerFile(t)
	t.Cleanup(func() { _ = f.Close() })
	return Socket{Name: "http", File: f}, "http://" + addr + "/"
}

// running runs s until the test ends and returns once a CMD serves.
func running(t *testing.T, s *Supervisor) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	for s.PID() == 0 {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("Run returned before serving: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	return done
}

// load drives keep-alive and new-connection clients until stop is closed.
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []error
	pids       map[string]bool
	wg         sync.WaitGroup
	stop       chan struct{}
}

// startLoad runs clients that never retry (package rawhttp), half of them
// keeping their connection alive, against the server at url.
func startLoad(url string, clients int) *load {
	l := &load{stop: make(chan struct{}), pids: map[string]bool{}}
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/")
	for i := range clients {
		c := &rawhttp.Client{Addr: addr, KeepAlive: i%2 == 0}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer c.Close()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				l.get(c, url)
			}
		}()
	}
	return l
}

func (l *load) get(c *rawhttp.Client, url string) {
	h, err := c.Get("/")
	if err != nil {
		l.failed.Add(1)
		l.mu.Lock()
		if len(l.errs) < 5 {
			l.errs = append(l.errs, err)
		}
		l.mu.Unlock()
		return
	}
	l.ok.Add(1)
	l.mu.Lock()
	l.pids[h.Get("X-Pid")] = true
	l.mu.Unlock()
}

func (l *load) finish(t *testing.T) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	t.Logf("load: %d requests, %d failed, %d pids answered", l.ok.Load(), l.failed.Load(), len(l.pids))
	if n := l.failed.Load(); n > 0 {
		t.Errorf("%d requests failed, first: %v", n, errors.Join(l.errs...))
	}
}

// waitRequests returns once n more requests have succeeded.
func (l *load) waitRequests(n int64) {
	want := l.ok.Load() + n
	for l.ok.Load() < want && l.failed.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
}

// buildC compiles testdata/child.c against libsystemd.
func buildC(t *testing.T) string {
	t.Helper()
	return buildCWith(t, "")
}

// buildCWith builds testdata/child.c; with libDir, against the
// libsystemd.so.0 there (another release's, whose C library is resolved
// when the child runs).
func buildCWith(t *testing.T, libDir string) string {
	t.Helper()
	gcc := testproc.LookPath(t, "gcc")
	pc := testproc.LookPath(t, "pkg-config")
	flags, err := exec.Command(pc, "--cflags", "--libs", "libsystemd").Output()
	testproc.Require(t, err == nil, "needs libsystemd-dev (pkg-config libsystemd)")
	if libDir != "" {
		flags, err = exec.Command(pc, "--cflags", "libsystemd").Output()
		testproc.Require(t, err == nil, "needs libsystemd-dev (pkg-config libsystemd)")
		flags = append(flags, " -L"+libDir+" -Wl,--allow-shlib-undefined -l:libsystemd.so.0"...)
	}
	out := filepath.Join(t.TempDir(), "child")
	args := slices.Concat([]string{"-O2", "-Wall", "-o", out, filepath.Join("testdata", "child.c")}, strings.Fields(string(flags)))
	if b, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, b)
	}
	return out
}

// recorder collects what the supervisor tells the service manager.
type recorder struct {
	mu     sync.Mutex
	states []string
}

func (r *recorder) notify(state string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states = append(r.states, state)
	return nil
}

func (r *recorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.states)
}

//go:build unix

package handoff

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/rawhttp"
	"github.com/batonhq/baton/internal/testproc"
)

func init() { testproc.Register("plain", plainMain) }

// plainMain serves HTTP with the Upgrader of systems other than Linux, as
// a developer's server on macOS does. It writes its address to DIR/addr;
// /slow creates DIR/started and answers once DIR/release exists.
func plainMain() {
	dir := testproc.Args()[0]
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "plain:", err)
		os.Exit(1)
	}
	up, err := newPlainForTest(Config{
		PIDFile: filepath.Join(dir, "pid"), DrainTimeout: 15 * time.Second,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		fail(err)
	}
	defer up.Close()
	ln, err := up.Listen("http", "tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	if err := writeFileAtomic(filepath.Join(dir, "addr"), []byte(ln.Addr().String())); err != nil {
		fail(err)
	}
	pid := strconv.Itoa(os.Getpid())
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			_ = os.WriteFile(filepath.Join(dir, "started"), nil, 0o600)
			awaitFile(filepath.Join(dir, "release"), time.Minute)
		}
		w.Header().Set("X-Pid", pid)
		_, _ = io.WriteString(w, "ok\n")
	})
	up.Serve(HTTP(&http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, ln))
	if err := plainReady(up); err != nil {
		fail(err)
	}
	if err := up.Wait(); err != nil {
		fail(err)
	}
}

// awaitFile waits up to limit for name to exist and reports whether it does.
func awaitFile(name string, limit time.Duration) bool {
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if _, err := os.Stat(name); err == nil {
			return true
		}
	}
	return false
}

// TestPlainProcess: a server on the Upgrader of systems other than Linux
// serves, logs on SIGHUP why it cannot upgrade and serves on (the same
// keep-alive connection included), and on SIGTERM drains a request in
// flight, removes its PID file and exits 0.
func TestPlainProcess(t *testing.T) {
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "pid")
	stderr := &testproc.Buffer{}
	cmd := testproc.Command(t, "plain", dir)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		select {
		case err := <-exited:
			exited <- err // for the next look
		default:
			_ = cmd.Process.Kill()
			exited <- <-exited
		}
		if t.Failed() {
			t.Logf("helper's stderr:\n%s", stderr)
		}
	}()
	pid := testproc.WaitPIDFile(t, pidfile, 0)
	if pid != cmd.Process.Pid {
		t.Fatalf("pid file names %d, want %d", pid, cmd.Process.Pid)
	}
	b, err := os.ReadFile(filepath.Join(dir, "addr"))
	if err != nil {
		t.Fatal(err)
	}
	addr := string(b)

	const n = 50
	requests, failures := 0, 0
	c := &rawhttp.Client{Addr: addr, KeepAlive: true}
	defer c.Close()
	get := func() {
		requests++
		if h, err := c.Get("/"); err != nil || h.Get("X-Pid") != strconv.Itoa(pid) {
			failures++
			t.Logf("GET /: %v", err)
		}
	}
	for range n {
		get()
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	const why = "fork-exec upgrades with inherited sockets are implemented for Linux only"
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), why); {
		if time.Now().After(deadline) {
			t.Fatalf("no %q logged after SIGHUP", why)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for range n {
		get()
	}
	t.Logf("%d requests around SIGHUP, %d failures", requests, failures)
	if failures != 0 {
		t.Errorf("%d of %d requests failed", failures, requests)
	}
	c.Close()

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if !awaitFile(filepath.Join(dir, "started"), 10*time.Second) {
		t.Fatal("/slow never started")
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The stop removes the PID file before the drain starts.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(pidfile); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("pid file still there after SIGTERM")
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "release"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("request in flight at SIGTERM: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK || !resp.Close {
		t.Errorf("request in flight at SIGTERM: %s, close %v; want 200 OK and Connection: close", resp.Status, resp.Close)
	}
	if err := <-exited; err != nil {
		t.Errorf("helper: %v, want exit status 0", err)
	}
	exited <- nil // for the deferred look
	if !strings.Contains(stderr.String(), "msg=drained") {
		t.Errorf("helper did not log its drain")
	}
}

package handoff

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/rawhttp"
	"github.com/batonhq/baton/internal/testproc"
)

// TestPlainServesAndDrains runs the Upgrader of systems other than Linux
// in this process: it binds afresh, serves, refuses upgrades saying why,
// and on Stop drains a request in flight before Wait returns.
func TestPlainServesAndDrains(t *testing.T) {
	if runtime.GOOS == "linux" {
		testproc.CheckFDs(t)
	}
	testproc.CheckGoroutines(t)
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "pid")
	u, err := newPlainForTest(Config{NoSignals: true, PIDFile: pidfile, DrainTimeout: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	ln, err := u.Listen("http", "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	pc, err := u.ListenPacket("echo", "udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	f, err := u.File("journal", func() (*os.File, error) { return os.Create(filepath.Join(dir, "journal")) })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(f, "generation 1\n"); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	if _, err := u.Listen("bad:name", "tcp", "127.0.0.1:0"); !errors.Is(err, ErrBadName) {
		t.Errorf("Listen with a bad name: %v, want ErrBadName", err)
	}

	started, drainSeen, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
	pid := strconv.Itoa(os.Getpid())
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-Draining(r.Context())
			close(drainSeen)
			<-release
		}
		w.Header().Set("X-Pid", pid)
		_, _ = io.WriteString(w, "ok\n")
	})
	u.Serve(HTTP(&http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, ln))
	if err := plainReady(u); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(pidfile); err != nil || strings.TrimSpace(string(b)) != pid {
		t.Fatalf("pid file: %q, %v; want %s", b, err, pid)
	}
	if u.Generation() != 1 || u.HandedOver() {
		t.Errorf("generation %d, handed over %v; want 1, false", u.Generation(), u.HandedOver())
	}
	if st := u.Status(); st.State != StateServing || st.Generation != 1 || st.PID != os.Getpid() || st.Started.IsZero() {
		t.Errorf("Status: state %q, generation %d, pid %d, started %v; want serving, 1, %d and a time",
			st.State, st.Generation, st.PID, st.Started, os.Getpid())
	}

	err = plainUpgrade(u)
	if !errors.Is(err, ErrNotSupported) || !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), runtime.GOOS) || !strings.Contains(err.Error(), "Linux only") {
		t.Errorf("Upgrade: %v; want ErrNotSupported naming %s and Linux", err, runtime.GOOS)
	}

	// Serving on after the refused upgrade; no retries.
	const n = 100
	failures := 0
	c := &rawhttp.Client{Addr: addr, KeepAlive: true}
	for range n {
		if h, err := c.Get("/"); err != nil || h.Get("X-Pid") != pid {
			failures++
			t.Logf("GET /: %v", err)
		}
	}
	c.Close()
	t.Logf("%d requests, %d failures", n, failures)
	if failures != 0 {
		t.Errorf("%d of %d requests failed", failures, n)
	}

	// A request in flight when the stop comes is answered, with
	// "Connection: close", before Wait returns.
	slow := make(chan *http.Response, 1)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go func() {
		defer close(slow)
		if _, err := io.WriteString(conn, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return
		}
		if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			slow <- resp
		}
	}()
	<-started
	waited := make(chan error, 1)
	go func() { waited <- u.Wait() }()
	u.Stop()
	<-drainSeen
	select {
	case err := <-waited:
		t.Fatalf("Wait returned %v with a request in flight", err)
	case <-slow:
		t.Fatal("request in flight ended before its handler")
	default:
	}
	close(release)
	switch resp := <-slow; {
	case resp == nil:
		t.Error("request in flight: no response")
	case resp.StatusCode != http.StatusOK || !resp.Close:
		t.Errorf("request in flight: %s, close %v; want 200 OK and Connection: close", resp.Status, resp.Close)
	}
	if err := <-waited; err != nil {
		t.Errorf("Wait: %v", err)
	}
	if _, err := os.Stat(pidfile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file after the stop: %v, want it removed", err)
	}
	if err := u.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	// (On Linux the Upgrader keeps a copy of each socket for a successor
	// until Close.)
	if conn, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
		_ = conn.Close()
		t.Errorf("%s still accepts after the drain and Close", addr)
	}
}

// TestPlainServerFails: a server that fails ends the generation, and Wait
// returns its error after draining the others.
func TestPlainServerFails(t *testing.T) {
	testproc.CheckGoroutines(t)
	u, err := newPlainForTest(Config{NoSignals: true, DrainTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	boom := errors.New("boom")
	shut := make(chan struct{})
	u.Serve(ServerFuncs{
		ServeFunc:    func() error { return boom },
		ShutdownFunc: func(context.Context) error { close(shut); return nil },
	})
	if err := plainReady(u); err != nil {
		t.Fatal(err)
	}
	if err := u.Wait(); !errors.Is(err, boom) {
		t.Errorf("Wait: %v, want %v", err, boom)
	}
	select {
	case <-shut:
	default:
		t.Error("Wait returned before the server's Shutdown")
	}
}

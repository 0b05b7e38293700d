package handoff

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestGenerationOneLifecycle(t *testing.T) {
	checkLeaks(t)
	notes := newReceiver(t)
	t.Setenv("NOTIFY_SOCKET", notes.path)
	pidfile := filepath.Join(t.TempDir(), "pid")
	up, err := New(Config{PIDFile: pidfile})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	if _, err := up.Upgrade(t.Context()); !errors.Is(err, ErrNotReady) {
		t.Errorf("Upgrade before Ready = %v, want ErrNotReady", err)
	}
	ln, err := up.Listen("http", "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := up.ListenPacket("dns", "udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	log := filepath.Join(t.TempDir(), "log")
	f, err := up.File("log", func() (*os.File, error) { return os.Create(log) })
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Names the successor's activation.Receive would refuse (before, a
	// tab or a non-ASCII name was taken and every later upgrade failed).
	for _, name := range []string{"", "a:b", strings.Repeat("x", 256), "a\tb", "caf\u00e9"} {
		if _, err := up.Listen(name, "tcp", "127.0.0.1:0"); !errors.Is(err, ErrBadName) {
			t.Errorf("Listen(%q) = %v, want ErrBadName", name, err)
		}
	}
	if files, names := up.fds.all(); len(files) != 3 || strings.Join(names, ":") != "http:dns:log" {
		t.Errorf("passed on: %d files named %v", len(files), names)
	}
	up.Serve(HTTP(&http.Server{Handler: http.NotFoundHandler()}, ln))
	if err := up.Ready(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(pidfile); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("pid file: %q %v", b, err)
	}
	resp, err := http.Get("http://" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	notes.waitFor(t, "READY=1", has(os.Getpid(), "READY=1"))
	up.Stop()
	if err := up.Wait(); err != nil {
		t.Errorf("Wait = %v", err)
	}
	if _, err := up.Upgrade(t.Context()); !errors.Is(err, ErrStopping) {
		t.Errorf("Upgrade after Stop = %v, want ErrStopping", err)
	}
	notes.waitFor(t, "STOPPING=1", has(os.Getpid(), "STOPPING=1"))
	if _, err := os.Stat(pidfile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file after stop: %v", err)
	}
	if err := up.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
}

func TestTCPServerDrain(t *testing.T) {
	checkLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := TCP(ln, func(c net.Conn) {
		buf := make([]byte, 64)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
	})
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	// Still served while open; the drain ends when the client leaves.
	if _, err := c.Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatalf("connection not served during drain: %v", err)
	}
	_ = c.Close()
	drained(t, shut, served)
}

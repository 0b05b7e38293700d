package handoff

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
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

// drainServer serves h on a fresh listener through HTTP.
func drainServer(t *testing.T, h http.Handler) (*HTTPServer, string, chan error) {
	t.Helper()
	return serveHTTP(t, &http.Server{Handler: h})
}

// serveHTTP serves srv through HTTP on a fresh listener, with IdleGrace
// 50 ms; Serve's result arrives on the channel.
func serveHTTP(t *testing.T, srv *http.Server) (*HTTPServer, string, chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := HTTP(srv, ln)
	s.IdleGrace = 50 * time.Millisecond
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	return s, ln.Addr().String(), served
}

func TestHTTPDrain(t *testing.T) {
	checkLeaks(t)
	release := make(chan struct{})
	inHandler := make(chan struct{}, 1)
	s, addr, served := drainServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			inHandler <- struct{}{}
			<-release
		}
	}))
	idle, err := dialHTTP("tcp", addr) // keep-alive, idle during the drain
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if _, err := idle.do("/"); err != nil {
		t.Fatal(err)
	}
	busy, err := dialHTTP("tcp", addr) // a request in flight
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if err := busy.send("/slow"); err != nil {
		t.Fatal(err)
	}
	<-inHandler

	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	// The idle connection is closed once idle for IdleGrace: EOF.
	if _, err := idle.receive(); err == nil {
		t.Error("idle keep-alive connection still open during drain")
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("listener still accepting during drain")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	default:
	}
	close(release)
	if _, err := busy.receive(); err != nil {
		t.Errorf("request in flight: %v", err)
	}
	drained(t, shut, served)
}

func TestHTTPDrainLameDuck(t *testing.T) {
	checkLeaks(t)
	s, addr, served := drainServer(t, http.NotFoundHandler())
	s.IdleGrace = time.Hour // never idle long enough: only Connection: close ends it
	c := mustDial(t, "tcp", addr)
	if _, err := c.do("/"); err == nil {
		t.Fatal("want 404")
	}
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	// A request on the idle keep-alive connection during the drain is
	// answered, with Connection: close, and the drain ends with it.
	for {
		resp, err := c.rawDo("/")
		if err != nil {
			t.Fatalf("request during drain: %v", err)
		}
		if resp.Close {
			break
		}
		time.Sleep(time.Millisecond) // the drain may not have started yet
	}
	drained(t, shut, served)
}

// TestHTTPDrainInFlight: a request whose handler started before the drain
// and writes its response after it began is answered with Connection:
// close, so the drain ends with that response instead of after IdleGrace;
// the handler still sees the net/http writer's interfaces.
func TestHTTPDrainInFlight(t *testing.T) {
	checkLeaks(t)
	release := make(chan struct{})
	in := make(chan struct{}, 1)
	var flusher, hijacker, controller bool
	s, addr, served := drainServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in <- struct{}{}
		<-release
		_, flusher = w.(http.Flusher)
		_, hijacker = w.(http.Hijacker)
		controller = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Minute)) == nil
		_, _ = io.WriteString(w, "late")
	}))
	s.IdleGrace = time.Hour // only Connection: close can end the drain
	c := mustDial(t, "tcp", addr)
	if err := c.send("/"); err != nil {
		t.Fatal(err)
	}
	<-in
	shut := make(chan error, 1)
	// Bounded: without Connection: close the drain would wait an hour.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	go func() { shut <- s.Shutdown(ctx) }()
	for !s.draining.Load() {
		time.Sleep(time.Millisecond)
	}
	close(release)
	h, err := c.receive()
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Get("Connection"); got != "close" {
		t.Errorf("in-flight response: Connection %q, want close", got)
	}
	drained(t, shut, served)
	if !flusher || !hijacker || !controller {
		t.Errorf("handler's writer: Flusher %v, Hijacker %v, ResponseController %v; want all", flusher, hijacker, controller)
	}
}

func TestHTTPDrainDeadline(t *testing.T) {
	checkLeaks(t)
	stuck := make(chan struct{})
	in := make(chan struct{}, 1)
	s, addr, served := drainServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in <- struct{}{}
		<-stuck // deaf to r.Context(): only the deadline ends it
	}))
	defer close(stuck)
	c := mustDial(t, "tcp", addr)
	if err := c.send("/"); err != nil {
		t.Fatal(err)
	}
	<-in
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want DeadlineExceeded", err)
	}
	if _, err := c.receive(); err == nil {
		t.Error("force-closed connection answered")
	}
	if err := <-served; err != nil {
		t.Errorf("Serve = %v", err)
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

// BenchmarkHTTPServe compares requests on one keep-alive connection to a
// plain http.Server and to the same server wrapped by HTTP (the steady
// state cost of the drain bookkeeping).
func BenchmarkHTTPServe(b *testing.B) {
	for _, wrapped := range []bool{false, true} {
		name := "plain"
		if wrapped {
			name = "handoff"
		}
		b.Run(name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
			var s Server = ServerFuncs{
				ServeFunc:    func() error { return srv.Serve(ln) },
				ShutdownFunc: srv.Shutdown,
			}
			if wrapped {
				s = HTTP(srv, ln)
			}
			go func() { _ = s.Serve() }()
			c, err := dialHTTP("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := c.do("/"); err != nil {
					b.Fatal(err)
				}
			}
			_ = c.Close()
			_ = s.Shutdown(context.Background())
		})
	}
}

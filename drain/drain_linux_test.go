//go:build linux

package drain

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"reflect"
	"testing"
	"time"
)

// shutdownAsync starts s's drain and returns its result channel.
func shutdownAsync(s *Server, d time.Duration) chan error {
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}()
	return shut
}

func expectClose(t *testing.T, h http.Header, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("request during the drain: %v", err)
	}
	if h.Get("Connection") != "close" {
		t.Errorf("Connection = %q, want close", h.Get("Connection"))
	}
}

// TestHTTPDrainLateFirstRequest: a connection accepted before the drain
// that sends its first request long after IdleGrace gets its answer.
// (Before, the drain closed connections in StateNew like idle ones.)
func TestHTTPDrainLateFirstRequest(t *testing.T) {
	checkLeaks(t)
	s, addr, served := drainServer(t, http.NotFoundHandler())
	s.NewConnGrace = 5 * time.Second
	late := mustDial(t, "tcp", addr)
	waitConns(t, s, 1)
	shut := shutdownAsync(s, 10*time.Second)
	time.Sleep(4 * s.IdleGrace) // a client far away, or slow to start
	if err := late.send("/"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(late.br, nil)
	if err != nil {
		t.Fatalf("late first request: %v", err)
	}
	_ = resp.Body.Close()
	if !resp.Close {
		t.Error("late first request answered without Connection: close")
	}
	drained(t, shut, served)
}

// TestHTTPDrainNewConnBound: a connection that never sends a request is
// closed once NewConnGrace old, and the drain ends then.
func TestHTTPDrainNewConnBound(t *testing.T) {
	checkLeaks(t)
	s, addr, served := drainServer(t, http.NotFoundHandler())
	s.NewConnGrace = 100 * time.Millisecond
	silent := mustDial(t, "tcp", addr)
	waitConns(t, s, 1)
	if err := <-shutdownAsync(s, 10*time.Second); err != nil {
		t.Errorf("Shutdown = %v, want the silent connection closed before the deadline", err)
	}
	if _, err := silent.br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("silent connection: read %v, want EOF", err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve = %v", err)
	}
}

// TestHTTPDrainPartialRequest: request bytes that net/http has read into
// its buffer while the connection still counts as idle keep it open: the
// rest of the request arrives after IdleGrace and is answered.
func TestHTTPDrainPartialRequest(t *testing.T) {
	checkLeaks(t)
	s, addr, served := drainServer(t, http.NotFoundHandler())
	c := mustDial(t, "tcp", addr)
	if _, err := c.rawDo("/"); err != nil {
		t.Fatal(err)
	}
	shut := shutdownAsync(s, 10*time.Second)
	time.Sleep(s.IdleGrace / 2)
	// "GE": fewer bytes than net/http peeks for (4), so they sit in its
	// buffer and the connection stays idle; the kernel has none left.
	if _, err := io.WriteString(c, "GE"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * s.IdleGrace)
	if _, err := io.WriteString(c, "T / HTTP/1.1\r\nHost: t\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("request completed after IdleGrace: %v", err)
	}
	_ = resp.Body.Close()
	drained(t, shut, served)
}

// TestHTTPDrainSignals: handlers see the drain start (Draining, the
// user's RegisterOnShutdown hooks) while requests are still in flight.
func TestHTTPDrainSignals(t *testing.T) {
	checkLeaks(t)
	in := make(chan struct{}, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in <- struct{}{}
		<-Draining(r.Context())
		_, _ = io.WriteString(w, "drained")
	})}
	hook := make(chan struct{})
	srv.RegisterOnShutdown(func() { close(hook) })
	s, addr, served := serveHTTP(t, srv)
	c := mustDial(t, "tcp", addr)
	if err := c.send("/"); err != nil {
		t.Fatal(err)
	}
	<-in
	if Draining(context.Background()) != nil {
		t.Error("Draining of a foreign context is not nil")
	}
	shut := shutdownAsync(s, 10*time.Second)
	select {
	case <-hook:
	case <-time.After(wait):
		t.Fatal("RegisterOnShutdown hook did not run when the drain started")
	}
	h, err := c.receive()
	expectClose(t, h, err)
	drained(t, shut, served)
}

// TestHTTPStreamGrace: a handler that streams until r.Context() is done
// is cancelled at StreamGrace and its response ends cleanly (the chunked
// end of body), long before the deadline.
func TestHTTPStreamGrace(t *testing.T) {
	checkLeaks(t)
	in := make(chan struct{}, 1)
	s, addr, served := drainServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		in <- struct{}{}
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
				_, _ = io.WriteString(w, "data: x\n\n")
				_ = rc.Flush()
			}
		}
	}))
	s.StreamGrace = 100 * time.Millisecond
	c := mustDial(t, "tcp", addr)
	if err := c.send("/events"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	<-in
	shut := shutdownAsync(s, 30*time.Second)
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Errorf("stream ended abruptly: %v", err)
	}
	_ = resp.Body.Close()
	if err := <-shut; err != nil {
		t.Errorf("Shutdown = %v, want the stream ended at StreamGrace", err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve = %v", err)
	}
}

// TestHTTPHijacked: a hijacked connection registered with Hijacked is
// told to go away when the drain starts, and the drain waits for it.
func TestHTTPHijacked(t *testing.T) {
	checkLeaks(t)
	released := make(chan struct{})
	s, addr, served := drainServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		away := make(chan struct{})
		done := Hijacked(r.Context(), func() {
			_, _ = io.WriteString(c, "going away\n")
			close(away)
		})
		// As a WebSocket server does: the session lives in goroutines
		// of its own, the handler returns.
		go func() {
			defer done()
			defer c.Close()
			<-away
			<-released
		}()
	}))
	c := mustDial(t, "tcp", addr)
	if err := c.send("/ws"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	shut := shutdownAsync(s, 10*time.Second)
	line, err := c.br.ReadString('\n')
	if err != nil || line != "going away\n" {
		t.Fatalf("hijacked connection read %q, %v; want going away", line, err)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown = %v before the hijacked connection ended", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(released)
	drained(t, shut, served)
}

// TestHTTPUpgradeDuringDrain: an upgrade request on a connection accepted
// before the drain, sent after it began, is answered 101 with its
// "Connection: Upgrade" (not "close", which fails a WebSocket handshake),
// and the upgraded connection is told to go away at once.
func TestHTTPUpgradeDuringDrain(t *testing.T) {
	checkLeaks(t)
	s, addr, served := drainServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Upgrade", "echo")
		w.Header().Set("Connection", "Upgrade")
		w.WriteHeader(http.StatusSwitchingProtocols)
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		away := make(chan struct{})
		done := Hijacked(r.Context(), func() {
			_, _ = io.WriteString(c, "going away\n")
			close(away)
		})
		defer done()
		<-away
	}))
	c := mustDial(t, "tcp", addr)
	waitConns(t, s, 1)
	shut := shutdownAsync(s, 10*time.Second)
	<-s.Draining()
	if err := c.send("/ws"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Close || resp.Header.Get("Connection") != "Upgrade" {
		t.Errorf("upgrade during the drain: %s, Connection %q (close %v); want 101, Connection Upgrade",
			resp.Status, resp.Header.Get("Connection"), resp.Close)
	}
	if line, err := c.br.ReadString('\n'); err != nil || line != "going away\n" {
		t.Errorf("upgraded connection read %q, %v; want going away", line, err)
	}
	drained(t, shut, served)
}

// TestHTTPHijackedDeadline: at the deadline a hijacked connection that
// did not end is closed.
func TestHTTPHijackedDeadline(t *testing.T) {
	checkLeaks(t)
	s, addr, served := drainServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(io.Discard, c) // deaf: only the close ends it
	}))
	c := mustDial(t, "tcp", addr)
	if err := c.send("/ws"); err != nil {
		t.Fatal(err)
	}
	waitConns(t, s, 0) // hijacked: out of net/http's hands
	if err := <-shutdownAsync(s, 100*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want DeadlineExceeded", err)
	}
	if _, err := c.br.ReadByte(); err == nil {
		t.Error("hijacked connection still open after the deadline")
	}
	if err := <-served; err != nil {
		t.Errorf("Serve = %v", err)
	}
}

// TestHTTPServerCopy: New serves a copy of every exported field of
// http.Server; a field added by a new Go release fails here until HTTP
// copies it.
func TestHTTPServerCopy(t *testing.T) {
	copied := map[string]bool{
		"Addr": true, "Handler": true, "DisableGeneralOptionsHandler": true, "TLSConfig": true,
		"ReadTimeout": true, "ReadHeaderTimeout": true, "WriteTimeout": true, "IdleTimeout": true,
		"MaxHeaderBytes": true, "TLSNextProto": true, "ConnState": true, "ErrorLog": true,
		"BaseContext": true, "ConnContext": true, "HTTP2": true, "Protocols": true,
	}
	for f := range reflect.TypeFor[http.Server]().Fields() {
		if f.IsExported() && !copied[f.Name] {
			t.Errorf("http.Server.%s is not copied by HTTP", f.Name)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv := &http.Server{Addr: "x", ReadTimeout: 1, ReadHeaderTimeout: 2, WriteTimeout: 3, IdleTimeout: 4, MaxHeaderBytes: 5}
	s := New(srv)
	if s.srv.Addr != "x" || s.srv.ReadTimeout != 1 || s.srv.ReadHeaderTimeout != 2 || s.srv.WriteTimeout != 3 || s.srv.IdleTimeout != 4 || s.srv.MaxHeaderBytes != 5 {
		t.Errorf("copy differs: %+v", s.srv)
	}
}

// drained checks that the drain and Serve both ended without an error.
func drained(t *testing.T, shut, served chan error) {
	t.Helper()
	if err := <-shut; err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve = %v", err)
	}
}

// waitConns waits until s tracks n connections.
func waitConns(t *testing.T, s *Server, n int64) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for s.open.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections tracked, want %d", s.open.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// drainServer serves h on a fresh listener through HTTP.
func drainServer(t *testing.T, h http.Handler) (*Server, string, chan error) {
	t.Helper()
	return serveHTTP(t, &http.Server{Handler: h})
}

// serveHTTP serves srv through HTTP on a fresh listener, with IdleGrace
// 50 ms; Serve's result arrives on the channel.
func serveHTTP(t *testing.T, srv *http.Server) (*Server, string, chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(srv)
	s.IdleGrace = 50 * time.Millisecond
	served := make(chan error, 1)
	go func() { served <- serveErr(s.Serve(ln)) }()
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

// BenchmarkHTTPServe compares requests on one keep-alive connection to a
// plain http.Server and to the same server wrapped by HTTP (the steady
// state cost of the drain bookkeeping).
func BenchmarkHTTPServe(b *testing.B) {
	for _, wrapped := range []bool{false, true} {
		name := "plain"
		if wrapped {
			name = "drain"
		}
		b.Run(name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
			serve, shutdown := srv.Serve, srv.Shutdown
			if wrapped {
				s := New(srv)
				serve, shutdown = s.Serve, s.Shutdown
			}
			go func() { _ = serve(ln) }()
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
			_ = shutdown(context.Background())
		})
	}
}

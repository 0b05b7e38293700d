//go:build linux

package drain

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestLameDuckReversible: the lame duck answers with "Connection: close"
// and closes idle connections, but keeps accepting, leaves Draining open
// and runs no shutdown hook; after LeaveLameDuck connections are kept
// again; the drain that follows runs the hooks once.
func TestLameDuckReversible(t *testing.T) {
	checkLeaks(t)
	var hooks atomic.Int32
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-Draining(r.Context()):
			w.Header().Set("X-Draining", "yes")
		default:
			w.Header().Set("X-Draining", "no")
		}
	})}
	srv.RegisterOnShutdown(func() { hooks.Add(1) })
	s, addr, served := serveHTTP(t, srv)

	idle := mustDial(t, "tcp", addr)
	if h, err := idle.do("/"); err != nil || h.Get("Connection") == "close" {
		t.Fatalf("before the lame duck: %v, Connection %q", err, h.Get("Connection"))
	}
	s.EnterLameDuck()
	s.EnterLameDuck() // twice: one lame duck
	// The idle keep-alive connection is closed (EOF), nothing on its wire.
	if _, err := idle.br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("idle connection in the lame duck: read %v, want EOF", err)
	}
	// New connections are still accepted and answered, with close.
	c := mustDial(t, "tcp", addr)
	h, err := c.do("/")
	expectClose(t, h, err)
	if got := h.Get("X-Draining"); got != "no" {
		t.Errorf("Draining(ctx) closed by the lame duck")
	}
	if n := hooks.Load(); n != 0 {
		t.Errorf("lame duck ran %d shutdown hooks", n)
	}
	select {
	case <-s.Draining():
		t.Error("Server.Draining closed by the lame duck")
	default:
	}

	s.LeaveLameDuck()
	s.LeaveLameDuck()
	kept := mustDial(t, "tcp", addr)
	for i := range 2 {
		if h, err := kept.do("/"); err != nil || h.Get("Connection") == "close" {
			t.Fatalf("after the lame duck, request %d: %v, Connection %q", i, err, h.Get("Connection"))
		}
		time.Sleep(3 * s.idleGrace()) // idle longer than IdleGrace: kept
	}

	s.EnterLameDuck()
	shut := shutdownAsync(s, wait)
	drained(t, shut, served)
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("second Shutdown = %v", err)
	}
	s.EnterLameDuck() // after Shutdown: nothing
	s.LeaveLameDuck()
	if n := hooks.Load(); n != 1 {
		t.Errorf("shutdown hooks ran %d times, want 1", n)
	}
	select {
	case <-s.Draining():
	default:
		t.Error("Draining open after Shutdown")
	}
}

// TestServeAfterShutdown: Serve after Shutdown closes its listener and
// returns http.ErrServerClosed, as net/http's does; Shutdown of a Server
// that never served returns at once.
func TestServeAfterShutdown(t *testing.T) {
	checkLeaks(t)
	s := New(&http.Server{})
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve = %v, want http.ErrServerClosed", err)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("listener still open: Accept = %v", err)
	}
}

// TestSetKeepAlivesEnabled: srv.SetKeepAlivesEnabled(false), before New or
// while serving, makes every response say "Connection: close", as it does
// for net/http's own Serve; turned on again, connections are kept.
func TestSetKeepAlivesEnabled(t *testing.T) {
	checkLeaks(t)
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
	srv.SetKeepAlivesEnabled(false)
	s, addr, served := serveHTTP(t, srv)
	h, err := mustDial(t, "tcp", addr).do("/")
	expectClose(t, h, err)

	srv.SetKeepAlivesEnabled(true)
	c := mustDial(t, "tcp", addr)
	if h, err := c.do("/"); err != nil || h.Get("Connection") == "close" {
		t.Fatalf("keep-alives enabled: %v, Connection %q", err, h.Get("Connection"))
	}
	srv.SetKeepAlivesEnabled(false)
	h, err = c.do("/")
	expectClose(t, h, err)
	drained(t, shutdownAsync(s, wait), served)
}

// doneCtx is a parent context that context.WithCancel cannot recognize:
// each child that is not cancelled keeps a goroutine of package context
// (propagateCancel) waiting, which makes a leaked child visible. A
// cancellable BaseContext keeps such a child in a map instead.
type doneCtx struct {
	context.Context
	done chan struct{}
}

func (c doneCtx) Done() <-chan struct{} { return c.done }

func (c doneCtx) Err() error {
	select {
	case <-c.done:
		return context.Canceled
	default:
		return nil
	}
}

// waitingChildren counts the goroutines that wait for a child context of a
// doneCtx.
func waitingChildren() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "created by context.(*cancelCtx).propagateCancel")
}

// TestHijackedContextCancelled: once a hijacked connection has ended (its
// handler returned, Hijacked's done called), its connection's context is
// cancelled, not left for the life of the server among the children of
// srv.BaseContext.
func TestHijackedContextCancelled(t *testing.T) {
	checkLeaks(t)
	base := doneCtx{Context: context.Background(), done: make(chan struct{})}
	defer close(base.done)
	srv := &http.Server{
		BaseContext: func(net.Listener) context.Context { return base },
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			done := Hijacked(r.Context(), nil)
			c, rw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
			_ = rw.Flush()
			go func() { // the connection goes on after the handler
				defer done()
				_, _ = io.Copy(io.Discard, c)
				_ = c.Close()
			}()
		}),
	}
	s, addr, served := serveHTTP(t, srv)
	before := waitingChildren()
	const n = 20
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade: %v", err)
		}
		_ = c.Close()
	}
	deadline := time.Now().Add(wait)
	for s.Connections() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if s.Connections() > 0 {
		t.Fatalf("%d connections still tracked", s.Connections())
	}
	// Every hijacked connection ended: none of their contexts is left.
	for waitingChildren() > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := waitingChildren() - before; got > 0 {
		t.Errorf("%d of %d ended hijacked connections' contexts never cancelled", got, n)
	}
	drained(t, shutdownAsync(s, wait), served)
}

// TestLameDuckHTTP2: an h2c connection (prior knowledge) is known as
// HTTP/2 (before, it was taken for an idle HTTP/1 connection and closed
// without GOAWAY); in the lame duck an idle HTTP/2 connection is told to
// go away (GOAWAY); after LeaveLameDuck a new one is kept.
func TestLameDuckHTTP2(t *testing.T) {
	checkLeaks(t)
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &protos, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto)
	})}
	s, addr, served := serveHTTP(t, srv)
	var cp http.Protocols
	cp.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &cp}
	dialH2 := func() *http.ClientConn {
		t.Helper()
		// One connection, used directly: nothing is retried.
		cc, err := tr.NewClientConn(t.Context(), "http", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cc.Close() })
		return cc
	}
	// usable: the connection takes new requests (no GOAWAY yet).
	usable := func(cc *http.ClientConn) bool { return cc.Err() == nil && cc.Available() > 0 }
	get := func(cc *http.ClientConn) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
		resp, err := cc.RoundTrip(req)
		if err != nil {
			t.Fatalf("request: %v", err)
		}
		b, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil || string(b) != "HTTP/2.0" {
			t.Fatalf("answer %q, %v; want HTTP/2.0", b, err)
		}
	}
	cc := dialH2()
	get(cc)
	// The drain knows it for HTTP/2, which it never closes (GOAWAY does).
	h2 := 0
	s.conns.Range(func(_, v any) bool {
		if v.(*connInfo).h2.Load() {
			h2++
		}
		return true
	})
	if h2 != 1 {
		t.Fatalf("%d connections known as HTTP/2, want 1 (h2c)", h2)
	}
	s.EnterLameDuck()
	deadline := time.Now().Add(wait)
	for usable(cc) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if usable(cc) {
		t.Fatal("idle HTTP/2 connection in the lame duck: no GOAWAY")
	}
	s.LeaveLameDuck()
	kept := dialH2()
	get(kept)
	time.Sleep(4 * s.idleGrace())
	if !usable(kept) {
		t.Error("HTTP/2 connection told to go away after LeaveLameDuck")
	}
	get(kept)
	_ = kept.Close()
	drained(t, shutdownAsync(s, wait), served)
}

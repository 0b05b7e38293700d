package handoff

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultIdleGrace is how long a keep-alive connection must have been idle
// before a draining HTTPServer closes it.
const DefaultIdleGrace = 250 * time.Millisecond

// HTTPServer drains an *http.Server without losing a request (SYSTEMD.md,
// golang/go#65802): Shutdown closes the listener, then serves a lame-duck
// period in which every request carries "Connection: close" in its
// response and a keep-alive connection is closed only once it has been
// idle for IdleGrace (counted from the start of the drain at the earliest)
// with no request bytes waiting; it ends as soon as the last connection is
// gone, then calls http.Server.Shutdown, and Close when ctx ends first.
//
// A request whose handler started before the drain gets "Connection:
// close" too when its response header is written after the drain began
// (the handler sees a wrapped http.ResponseWriter that keeps Flusher,
// Hijacker, io.ReaderFrom and Unwrap for http.ResponseController); one
// whose header went out before stays open until idle for IdleGrace. A client
// that sends a request at the very moment an idle connection is closed
// sees it fail, as with any keep-alive timeout; HTTP/1.1 clients retry
// idempotent requests in that case.
//
// Hijacked connections (WebSocket and the like) leave the server's
// bookkeeping, as with http.Server.Shutdown: drain them with a Server of
// their own (ServerFuncs) given to the same Upgrader.
type HTTPServer struct {
	// IdleGrace overrides DefaultIdleGrace; set it before Serve.
	IdleGrace time.Duration

	srv *http.Server
	ln  net.Listener

	draining atomic.Bool
	conns    sync.Map // net.Conn -> *connInfo
	open     atomic.Int64
	wake     chan struct{}
	served   chan struct{}
	userHook func(net.Conn, http.ConnState)
}

type connInfo struct {
	state atomic.Int32 // http.ConnState
	since atomic.Int64 // unix nanoseconds of the last change
}

// HTTP wraps srv to serve ln and drain as HTTPServer describes. It sets
// srv.ConnState (calling the one already set) and wraps srv.Handler; do
// not change either afterwards. The served listener is ln itself.
func HTTP(srv *http.Server, ln net.Listener) *HTTPServer {
	s := &HTTPServer{srv: srv, ln: ln, wake: make(chan struct{}, 1), served: make(chan struct{}), userHook: srv.ConnState}
	inner := srv.Handler
	if inner == nil {
		inner = http.DefaultServeMux
	}
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.draining.Load() {
			w.Header().Set("Connection", "close")
			inner.ServeHTTP(w, r)
			return
		}
		// The drain may begin while the handler runs: decide when the
		// header goes out. The writer is pooled (no allocation per
		// request); a handler must not use w after it returned anyway.
		lw := lameDuckPool.Get().(*lameDuckWriter)
		*lw = lameDuckWriter{ResponseWriter: w, s: s}
		inner.ServeHTTP(lw, r)
		lw.header() // a handler that wrote nothing: net/http writes the header now
		*lw = lameDuckWriter{}
		lameDuckPool.Put(lw)
	})
	srv.ConnState = s.connState
	return s
}

func (s *HTTPServer) grace() time.Duration {
	if s.IdleGrace > 0 {
		return s.IdleGrace
	}
	return DefaultIdleGrace
}

func (s *HTTPServer) connState(c net.Conn, st http.ConnState) {
	switch st {
	// Steady state costs a lock-free map read and an atomic store per
	// change; the clock is read only while draining (Shutdown stamps the
	// connections idle when it starts).
	case http.StateNew:
		ci := &connInfo{}
		ci.state.Store(int32(st))
		if s.draining.Load() {
			ci.since.Store(time.Now().UnixNano())
		}
		s.conns.Store(c, ci)
		s.open.Add(1)
	case http.StateActive:
		if v, ok := s.conns.Load(c); ok {
			v.(*connInfo).state.Store(int32(st))
		}
	case http.StateIdle:
		if v, ok := s.conns.Load(c); ok {
			ci := v.(*connInfo)
			if s.draining.Load() {
				ci.since.Store(time.Now().UnixNano())
				ci.state.Store(int32(st))
				s.poke()
			} else {
				ci.state.Store(int32(st))
			}
		}
	case http.StateHijacked, http.StateClosed:
		if _, ok := s.conns.LoadAndDelete(c); ok {
			if s.open.Add(-1) == 0 && s.draining.Load() {
				s.poke()
			}
		}
	}
	if s.userHook != nil {
		s.userHook(c, st)
	}
}

func (s *HTTPServer) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Serve serves until Shutdown and returns nil then.
func (s *HTTPServer) Serve() error {
	defer close(s.served)
	err := s.srv.Serve(s.ln)
	if s.draining.Load() && (errors.Is(err, net.ErrClosed) || errors.Is(err, http.ErrServerClosed)) {
		return nil
	}
	return err
}

// Shutdown drains; see HTTPServer. It must be called after Serve started.
func (s *HTTPServer) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	lnErr := s.ln.Close()
	if errors.Is(lnErr, net.ErrClosed) {
		lnErr = nil
	}
	// Once Serve has returned, every accepted connection is counted.
	select {
	case <-s.served:
	case <-ctx.Done():
		_ = s.srv.Close()
		return ctx.Err()
	}
	// Idle since when is not tracked before the drain: count from now.
	now := time.Now().UnixNano()
	s.conns.Range(func(_, v any) bool {
		v.(*connInfo).since.Store(now)
		return true
	})
	grace := s.grace()
	t := time.NewTimer(grace)
	defer t.Stop()
	for s.open.Load() > 0 {
		next := s.closeIdle(grace)
		t.Reset(next)
		select {
		case <-s.wake:
		case <-t.C:
		case <-ctx.Done():
			_ = s.srv.Close()
			return ctx.Err()
		}
	}
	// Nothing is left: Shutdown returns at once and marks the server done.
	if err := s.srv.Shutdown(ctx); err != nil {
		_ = s.srv.Close()
		return err
	}
	return lnErr
}

// closeIdle closes the connections idle (or new and silent) for at least
// grace with nothing to read, and returns when to look again.
func (s *HTTPServer) closeIdle(grace time.Duration) time.Duration {
	now := time.Now().UnixNano()
	next := grace
	s.conns.Range(func(k, v any) bool {
		ci := v.(*connInfo)
		st := http.ConnState(ci.state.Load())
		if st != http.StateIdle && st != http.StateNew {
			return true
		}
		idle := time.Duration(now - ci.since.Load())
		if idle < grace {
			next = min(next, grace-idle)
			return true
		}
		c := k.(net.Conn)
		if !pending(c) {
			_ = c.Close()
		}
		return true
	})
	return max(next, time.Millisecond)
}

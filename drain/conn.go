package drain

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// connInfo is what a Server knows of one accepted connection. It is
// also the connection's base context (http.Server.ConnContext), so that a
// request finds it with ctx.Value and the drain can cancel the contexts of
// the requests still running on it.
type connInfo struct {
	context.Context // the connection's context, cancelled by cancel

	s      *Server
	conn   net.Conn
	cancel context.CancelFunc

	state     atomic.Int32 // http.ConnState
	since     atomic.Int64 // unix nanoseconds: accepted (StateNew) or went idle (StateIdle)
	h2        atomic.Bool  // served by HTTP/2: drained by GOAWAY, never closed by the drain
	cancelled atomic.Bool  // its context was cancelled by the drain (StreamGrace)
	release   atomic.Int64 // unix nanoseconds: its turn in the drain's spread (0: the drain's start)
}

// released reports whether the drain's spread has come to ci's turn.
func (ci *connInfo) released() bool {
	r := ci.release.Load()
	return r == 0 || time.Now().UnixNano() >= r
}

type connKey struct{}

// Value gives the connection itself for connKey, the rest from the parent.
func (ci *connInfo) Value(key any) any {
	if key == (connKey{}) {
		return ci
	}
	return ci.Context.Value(key)
}

// Draining returns a channel that is closed when the Server serving the
// request whose context is ctx starts draining (Shutdown; not the lame
// duck). A handler that streams (Server-Sent Events,
// long polling) selects on it and returns, so its response ends cleanly
// (the chunked end of body) and the client reconnects, elsewhere.
// For a ctx that does not come from a Server's request the channel is
// nil, which blocks forever.
func Draining(ctx context.Context) <-chan struct{} {
	if ci := connOf(ctx); ci != nil {
		return ci.s.drainStarted
	}
	return nil
}

func connOf(ctx context.Context) *connInfo {
	ci, _ := ctx.Value(connKey{}).(*connInfo)
	return ci
}

// connContext is the served server's ConnContext: after the user's own, it
// makes the connection's context a connInfo and records the connection.
func (s *Server) connContext(ctx context.Context, c net.Conn) context.Context {
	if s.userConnCtx != nil {
		ctx = s.userConnCtx(ctx, c)
	}
	ci := &connInfo{s: s, conn: c}
	ci.Context, ci.cancel = context.WithCancel(ctx)
	ci.state.Store(int32(http.StateNew))
	ci.since.Store(time.Now().UnixNano())
	s.conns.Store(c, ci)
	s.open.Add(1)
	return ci
}

// connState follows every connection's state. Steady state costs a map
// read, an atomic store and, when a connection goes idle, a clock read.
func (s *Server) connState(c net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		// Recorded by connContext, which net/http calls first.
	case http.StateActive:
		if v, ok := s.conns.Load(c); ok {
			v.(*connInfo).state.Store(int32(st))
		}
	case http.StateIdle:
		if v, ok := s.conns.Load(c); ok {
			ci := v.(*connInfo)
			ci.since.Store(time.Now().UnixNano())
			ci.state.Store(int32(st))
			if s.closing.Load() {
				s.poke()
			}
		}
	case http.StateHijacked, http.StateClosed:
		// A hijacked connection's requests go on (its handler runs):
		// its context is cancelled when it ends (hijack.go tracks it).
		if v, ok := s.conns.LoadAndDelete(c); ok {
			if st == http.StateClosed {
				v.(*connInfo).cancel()
			}
			if s.open.Add(-1) == 0 && s.closing.Load() {
				s.poke()
			}
		}
	}
	if s.userHook != nil {
		s.userHook(c, st)
	}
}

package handoff

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/batonhq/baton/drain"
)

// Defaults of the HTTP drain (package drain's).
const (
	// DefaultIdleGrace is how long a keep-alive connection must have been
	// idle before a draining HTTPServer closes it.
	DefaultIdleGrace = drain.DefaultIdleGrace
	// DefaultNewConnGrace is how long a draining HTTPServer keeps a
	// connection that has not sent its first request.
	DefaultNewConnGrace = drain.DefaultNewConnGrace
	// DefaultSpreadPerConn is the reconnect spread's window per open
	// connection when HTTPServer.SpreadWindow is zero.
	DefaultSpreadPerConn = drain.DefaultSpreadPerConn
	// DefaultSpreadMax bounds the default spread window.
	DefaultSpreadMax = drain.DefaultSpreadMax
)

// HTTPServer is the Server of an *http.Server on one listener, drained by
// package drain (see drain.Server for every guarantee: "Connection:
// close" on the responses of the drain, idle connections closed only when
// nothing is on the wire, the new-connection grace, HTTP/2 GOAWAY,
// Draining, Hijacked, StreamGrace, the spread). Shutdown starts the drain;
// the listener is closed, and connections the kernel queued after that
// are the successor's (the socket is shared).
type HTTPServer struct {
	// IdleGrace overrides DefaultIdleGrace; set it before Serve.
	IdleGrace time.Duration
	// NewConnGrace bounds how long the drain keeps a connection without a
	// first request when srv.ReadHeaderTimeout is not set: this value
	// when positive, else the Upgrader's Config.NewConnGrace, else
	// DefaultNewConnGrace.
	NewConnGrace time.Duration
	// StreamGrace is when, after the drain began, the contexts of the
	// requests still running are cancelled: this value when positive,
	// else the Upgrader's Config.StreamGrace, else three quarters of the
	// time Shutdown's ctx leaves (never, without a deadline).
	StreamGrace time.Duration
	// SpreadWindow spreads the drain's "Connection: close" and idle
	// closes over a window (drain.Server.SpreadWindow). Zero: the
	// default spread; negative: none.
	SpreadWindow time.Duration

	d    *drain.Server
	ln   net.Listener
	once sync.Once // copies the graces into d
}

// HTTP returns a Server that serves srv's configuration on ln and drains as
// drain.Server does. When srv.TLSConfig is set it serves TLS exactly as
// srv.ServeTLS would (ln is the plain listener; HTTP/2 and HTTP/1.1 by
// ALPN; the certificate in TLSConfig), otherwise plain HTTP (and h2c when
// srv.Protocols enables unencrypted HTTP/2).
//
// srv itself serves nothing: HTTP serves a copy of its fields (drain.New),
// so set every field before calling HTTP and change none afterwards
// (srv.SetKeepAlivesEnabled is followed). Its RegisterOnShutdown functions
// run when the drain starts, and handlers find the serving copy, not srv,
// under http.ServerContextKey.
func HTTP(srv *http.Server, ln net.Listener) *HTTPServer {
	return &HTTPServer{d: drain.New(srv), ln: ln}
}

// configure copies the graces into the drain, once, at the first
// Shutdown (the drain reads them only from then on): the server's own,
// else the Upgrader's that ctx carries, for what the server leaves unset.
func (s *HTTPServer) configure(ctx context.Context) {
	s.once.Do(func() {
		dc, _ := ctx.Value(drainKey{}).(drainConfig)
		s.d.IdleGrace, s.d.SpreadWindow = s.IdleGrace, s.SpreadWindow
		s.d.NewConnGrace, s.d.StreamGrace = s.NewConnGrace, s.StreamGrace
		if s.NewConnGrace <= 0 {
			s.d.NewConnGrace = dc.newConnGrace
		}
		if s.StreamGrace <= 0 {
			s.d.StreamGrace = dc.streamGrace
		}
	})
}

// Serve serves until Shutdown and returns nil then.
func (s *HTTPServer) Serve() error {
	err := s.d.Serve(acceptMarker{s.ln})
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown drains; see drain.Server.Shutdown.
func (s *HTTPServer) Shutdown(ctx context.Context) error {
	s.configure(ctx)
	markStage(stageDrain) // the drain closes the listener first thing
	err := s.d.Shutdown(ctx)
	// Closed by the drain when Serve started, else here.
	if lnErr := s.ln.Close(); err == nil && !errors.Is(lnErr, net.ErrClosed) {
		err = lnErr
	}
	return err
}

func (s *HTTPServer) acceptsOn() net.Listener { return s.ln }

// Draining returns a channel that is closed when the drain starts.
func (s *HTTPServer) Draining() <-chan struct{} { return s.d.Draining() }

// Connections returns the number of connections open.
func (s *HTTPServer) Connections() int { return s.d.Connections() }

// Draining returns a channel that is closed when the HTTPServer serving the
// request whose context is ctx starts draining: the process handed over to
// its successor or is stopping. See drain.Draining.
func Draining(ctx context.Context) <-chan struct{} { return drain.Draining(ctx) }

// Hijacked registers a connection that a handler took over from net/http,
// such as a WebSocket, with the HTTPServer that served the request; ctx is
// that request's context. See drain.Hijacked.
func Hijacked(ctx context.Context, goingAway func()) (done func()) {
	return drain.Hijacked(ctx, goingAway)
}

// drainConfig is what an Upgrader tells its servers' Shutdown.
type drainConfig struct {
	streamGrace  time.Duration
	newConnGrace time.Duration
}

type drainKey struct{}

// acceptMarker records the successor's first accepted connection.
type acceptMarker struct{ net.Listener }

func (l acceptMarker) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		markStage(stageAccept)
	}
	return c, err
}

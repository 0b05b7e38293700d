package drain

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of the drain.
const (
	// DefaultIdleGrace is how long a keep-alive connection must have been
	// idle before the drain (or the lame duck) closes it.
	DefaultIdleGrace = 250 * time.Millisecond
	// DefaultNewConnGrace is how long the drain keeps a connection that
	// has not sent its first request (net/http's own Shutdown gives such
	// connections 5 s too).
	DefaultNewConnGrace = 5 * time.Second
	// DefaultSpreadPerConn is the reconnect spread's window per open
	// connection when Server.SpreadWindow is zero.
	DefaultSpreadPerConn = 100 * time.Microsecond
	// DefaultSpreadMax bounds the default spread window.
	DefaultSpreadMax = time.Second
)

// spreadMinConns: with fewer connections open, the default spreads nothing.
const spreadMinConns = 64

// Server serves an *http.Server's configuration and drains it without
// losing a request; see the package doc for what Shutdown, EnterLameDuck
// and LeaveLameDuck do. Set its fields before Serve and change none
// afterwards.
type Server struct {
	// IdleGrace overrides DefaultIdleGrace.
	IdleGrace time.Duration
	// NewConnGrace bounds how long the drain keeps a connection without a
	// first request when srv.ReadHeaderTimeout is not set: this value
	// when positive, else DefaultNewConnGrace.
	NewConnGrace time.Duration
	// StreamGrace is when, after the drain began, the contexts of the
	// requests still running are cancelled: this value when positive,
	// else three quarters of the time Shutdown's ctx leaves (never,
	// without a deadline).
	StreamGrace time.Duration
	// SpreadWindow spreads the "Connection: close" and idle closes of the
	// drain (and of the lame duck) over a window, so that the clients
	// reconnect elsewhere at a bounded rate (TLS handshakes included),
	// not all in the same instant: the connections open when it starts
	// are released one after another, evenly over the window, and each is
	// served as before until its turn. Zero: DefaultSpreadPerConn per
	// open connection, at most DefaultSpreadMax, none below 64
	// connections. Positive: this window. Negative: no spreading. The
	// window never exceeds half of what Shutdown's ctx leaves, so the
	// drain ends by the deadline.
	SpreadWindow time.Duration

	srv         *http.Server // the serving copy of the user's server
	hooks       *http.Server // the user's server: its shutdown hooks, its keep-alive switch
	keepAlive   keepAliveSwitch
	h2          *http.Server // holds HTTP/2's GOAWAY hook; nil without
	tls         bool
	userHook    func(net.Conn, http.ConnState)
	userConnCtx func(context.Context, net.Conn) context.Context

	closing      atomic.Bool // lame duck or drain: responses say "Connection: close"
	draining     atomic.Bool // the drain (Shutdown) began
	drainStarted chan struct{}
	conns        sync.Map // net.Conn -> *connInfo
	open         atomic.Int64
	hijacks      hijacks
	lateH2       atomic.Bool    // an HTTP/2 connection started after the GOAWAY
	away         sync.WaitGroup // goingAway functions of hijacked connections
	wake         chan struct{}

	mu       sync.Mutex
	shutting bool           // Shutdown was called: Serve refuses, lame duck calls do nothing
	lns      []net.Listener // the listeners given to Serve
	serving  sync.WaitGroup // Serve calls in progress
	lame     *lameDuck      // the lame duck running, nil for none
}

// New returns a Server that serves srv's configuration. srv itself serves
// nothing: the Server serves a copy of its fields, with its Handler and
// ConnState wrapped and its ConnContext extended, so set every field
// before calling New and change none afterwards (except through
// srv.SetKeepAlivesEnabled, which is followed). srv's RegisterOnShutdown
// functions run once, when the drain starts (Shutdown calls
// srv.Shutdown then, which closes nothing of what is served), and
// handlers find the serving copy, not srv, under http.ServerContextKey.
func New(srv *http.Server) *Server {
	s := &Server{
		hooks:        srv,
		keepAlive:    keepAliveOf(srv),
		tls:          srv.TLSConfig != nil,
		userHook:     srv.ConnState,
		userConnCtx:  srv.ConnContext,
		drainStarted: make(chan struct{}),
		wake:         make(chan struct{}, 1),
	}
	s.h2 = setupHTTP2(srv)
	next := srv.TLSNextProto
	if s.h2 != nil {
		next = s.h2.TLSNextProto
	}
	inner := srv.Handler
	if inner == nil {
		inner = http.DefaultServeMux
	}
	s.srv = &http.Server{
		Addr:                         srv.Addr,
		Handler:                      s.handler(inner),
		DisableGeneralOptionsHandler: srv.DisableGeneralOptionsHandler,
		TLSConfig:                    srv.TLSConfig,
		ReadTimeout:                  srv.ReadTimeout,
		ReadHeaderTimeout:            srv.ReadHeaderTimeout,
		WriteTimeout:                 srv.WriteTimeout,
		IdleTimeout:                  srv.IdleTimeout,
		MaxHeaderBytes:               srv.MaxHeaderBytes,
		TLSNextProto:                 s.tlsNextProto(next),
		ConnState:                    s.connState,
		ErrorLog:                     srv.ErrorLog,
		BaseContext:                  srv.BaseContext,
		ConnContext:                  s.connContext,
		HTTP2:                        srv.HTTP2,
		Protocols:                    srv.Protocols,
	}
	return s
}

// ErrNoCertificate is returned by Serve for a TLSConfig without one.
var ErrNoCertificate = errors.New("drain: srv.TLSConfig has no certificate (Certificates, GetCertificate or GetConfigForClient)")

// Serve accepts connections on ln and serves them until Shutdown, which
// closes ln; it then returns http.ErrServerClosed, as http.Server.Serve
// does. When srv.TLSConfig is set it serves TLS exactly as srv.ServeTLS
// would (ln is the plain listener; HTTP/2 and HTTP/1.1 by ALPN; the
// certificate in TLSConfig), otherwise plain HTTP (and h2c when
// srv.Protocols enables unencrypted HTTP/2). Serve may be called for
// several listeners. Called after Shutdown, it closes ln and returns
// http.ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.shutting {
		s.mu.Unlock()
		_ = ln.Close()
		return http.ErrServerClosed
	}
	s.lns = append(s.lns, ln)
	s.serving.Add(1)
	s.mu.Unlock()
	defer s.serving.Done()
	var err error
	if s.tls {
		c := s.srv.TLSConfig
		if len(c.Certificates) == 0 && c.GetCertificate == nil && c.GetConfigForClient == nil {
			_ = ln.Close()
			return ErrNoCertificate
		}
		err = s.srv.ServeTLS(ln, "", "")
	} else {
		err = s.srv.Serve(ln)
	}
	if s.draining.Load() && (errors.Is(err, net.ErrClosed) || errors.Is(err, http.ErrServerClosed)) {
		return http.ErrServerClosed
	}
	return err
}

// ListenAndServe listens on srv.Addr (":http", or ":https" with a
// TLSConfig, when empty) and serves it with Serve.
func (s *Server) ListenAndServe() error {
	addr := s.srv.Addr
	if addr == "" {
		addr = ":http"
		if s.tls {
			addr = ":https"
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(ln)
}

// Draining returns a channel that is closed when the drain (Shutdown)
// starts. The lame duck does not close it.
func (s *Server) Draining() <-chan struct{} { return s.drainStarted }

// Connections returns the number of connections open: served by net/http
// or hijacked and still tracked.
func (s *Server) Connections() int { return int(s.open.Load()) + s.hijacks.count() }

func (s *Server) handler(inner http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.draining.Load() {
			if ci := connOf(r.Context()); ci != nil && ci.cancelled.Load() {
				// The drain cancelled the connection's context while an
				// earlier request ran (StreamGrace); this one starts now
				// and gets a context of its own.
				r = r.WithContext(context.WithoutCancel(r.Context()))
			}
		}
		// The drain may begin while the handler runs: decide when the
		// header goes out. The writer is pooled (no allocation per
		// request); a handler must not use w after it returned anyway.
		lw := lameDuckPool.Get().(*lameDuckWriter)
		*lw = lameDuckWriter{ResponseWriter: w, s: s, ctx: r.Context()}
		inner.ServeHTTP(lw, r)
		lw.header() // a handler that wrote nothing: net/http writes the header now
		if lw.hijacked != nil {
			s.hijacks.handlerDone(lw.hijacked)
			s.poke()
		}
		*lw = lameDuckWriter{}
		lameDuckPool.Put(lw)
	})
}

func (s *Server) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// goAway runs a hijacked connection's goingAway function.
func (s *Server) goAway(f func()) { s.away.Go(f) }

func (s *Server) idleGrace() time.Duration {
	if s.IdleGrace > 0 {
		return s.IdleGrace
	}
	return DefaultIdleGrace
}

// newConnBound is how old a connection without a first request may get.
func (s *Server) newConnBound() time.Duration {
	if d := s.srv.ReadHeaderTimeout; d > 0 {
		return d
	}
	if s.NewConnGrace > 0 {
		return s.NewConnGrace
	}
	return DefaultNewConnGrace
}

// streamGrace is when running requests are cancelled; 0 means never.
func (s *Server) streamGrace(ctx context.Context) time.Duration {
	if s.StreamGrace > 0 {
		return s.StreamGrace
	}
	if dl, ok := ctx.Deadline(); ok {
		return max(time.Until(dl)*3/4, time.Millisecond)
	}
	return 0
}

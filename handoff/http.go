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

// Defaults of the HTTP drain.
const (
	// DefaultIdleGrace is how long a keep-alive connection must have been
	// idle before a draining HTTPServer closes it.
	DefaultIdleGrace = 250 * time.Millisecond
	// DefaultNewConnGrace is how long a draining HTTPServer keeps a
	// connection that has not sent its first request (net/http's own
	// Shutdown gives such connections 5 s too).
	DefaultNewConnGrace = 5 * time.Second
	// DefaultSpreadPerConn is the reconnect spread's window per open
	// connection when HTTPServer.SpreadWindow is zero.
	DefaultSpreadPerConn = 100 * time.Microsecond
	// DefaultSpreadMax bounds the default spread window.
	DefaultSpreadMax = time.Second
)

// spreadMinConns: with fewer connections open, the default spreads nothing.
const spreadMinConns = 64

// HTTPServer drains an *http.Server without losing a request (docs/systemd-notes.md,
// golang/go#65802). Shutdown starts the drain:
//
//   - The listener is closed; connections the kernel queued after that are
//     the successor's (the socket is shared).
//   - Every response whose header is written from then on carries
//     "Connection: close" (HTTP/1.1), or makes HTTP/2 send GOAWAY (NO_ERROR,
//     the last stream processed) ahead of the response's body, so the
//     client opens its next stream elsewhere; HTTP/2 connections still
//     without GOAWAY after IdleGrace (idle, or one long stream; after the
//     spread's window and IdleGrace with SpreadWindow) get it then. An
//     HTTP/2 connection closes by itself once its streams are done; the
//     drain never closes one before the deadline.
//   - A keep-alive connection is closed once it has been idle for
//     IdleGrace (counted from the start of the drain at the earliest),
//     unless request bytes are on their way: waiting in the kernel, or
//     received since it went idle (net/http may hold part of a request in
//     its buffer while the connection still counts as idle).
//   - With many connections, the two points above come to each one in
//     turn, spread over a window (SpreadWindow), so that the clients do
//     not all reconnect to the successor at once.
//   - A connection that has not sent its first request (a slow or distant
//     client, a TLS handshake in progress, a browser's pre-connect) is
//     kept until it does, and is then answered with "Connection: close",
//     or until it is srv.ReadHeaderTimeout old (NewConnGrace when that is
//     not set), then closed.
//   - Handlers see the drain: Draining(r.Context()) is closed, and srv's
//     RegisterOnShutdown functions run. Requests still running StreamGrace
//     after the drain began have their contexts cancelled, so a handler
//     that streams until r.Context() is done returns and its response ends
//     cleanly, not by a reset at the deadline.
//   - Hijacked connections (WebSocket) are waited for while their handler
//     runs or while registered with Hijacked, which also tells them to go
//     away.
//
// Shutdown returns as soon as the last connection is gone; when ctx ends
// first, it closes what is left and returns ctx.Err().
//
// A request whose handler started before the drain gets "Connection:
// close" too when its response header is written after the drain began
// (the handler sees a wrapped http.ResponseWriter that keeps Flusher,
// Hijacker, io.ReaderFrom and Unwrap for http.ResponseController). A
// client that sends a request at the very moment an idle HTTP/1.1
// connection is closed sees it fail, as with any keep-alive timeout;
// HTTP/1.1 clients retry idempotent requests in that case.
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
	// closes over a window, so that the clients reconnect to the
	// successor at a bounded rate (TLS handshakes included), not all in
	// the same instant: the connections open when the drain starts are
	// released one after another, evenly over the window, and each is
	// served as before until its turn (its responses keep the connection
	// open; IdleGrace counts from its turn). Zero: DefaultSpreadPerConn
	// per open connection, at most DefaultSpreadMax, none below 64
	// connections. Positive: this window. Negative: no spreading. The
	// window never exceeds half of what Shutdown's ctx leaves, so the
	// drain ends by the deadline.
	SpreadWindow time.Duration

	srv         *http.Server // the serving copy of the user's server
	hooks       *http.Server // the user's server: its shutdown hooks
	h2          *http.Server // holds HTTP/2's GOAWAY hook; nil without
	ln          net.Listener
	tls         bool
	userHook    func(net.Conn, http.ConnState)
	userConnCtx func(context.Context, net.Conn) context.Context

	draining     atomic.Bool
	drainStarted chan struct{}
	drainOnce    sync.Once
	conns        sync.Map // net.Conn -> *connInfo
	open         atomic.Int64
	hijacks      hijacks
	lateH2       atomic.Bool    // an HTTP/2 connection started after the GOAWAY
	away         sync.WaitGroup // goingAway functions of hijacked connections
	wake         chan struct{}
	served       chan struct{}
	window       time.Duration // the spread, set when the drain starts
	spare        spare         // the socket, kept for Renew
}

// HTTP returns a Server that serves srv's configuration on ln and drains as
// HTTPServer describes. When srv.TLSConfig is set it serves TLS exactly as
// srv.ServeTLS would (ln is the plain listener; HTTP/2 and HTTP/1.1 by
// ALPN; the certificate in TLSConfig), otherwise plain HTTP (and h2c when
// srv.Protocols enables unencrypted HTTP/2).
//
// srv itself serves nothing: HTTP serves a copy of its fields, with its
// Handler and ConnState wrapped and its ConnContext extended, so set every
// field before calling HTTP and change none afterwards. Its
// RegisterOnShutdown functions run when the drain starts (HTTP calls
// srv.Shutdown then, which closes nothing of what is served), and handlers
// find the serving copy, not srv, under http.ServerContextKey. The served
// listener is ln itself (or the TLS listener over it).
func HTTP(srv *http.Server, ln net.Listener) *HTTPServer {
	s := &HTTPServer{
		hooks:        srv,
		ln:           ln,
		tls:          srv.TLSConfig != nil,
		userHook:     srv.ConnState,
		userConnCtx:  srv.ConnContext,
		drainStarted: make(chan struct{}),
		wake:         make(chan struct{}, 1),
		served:       make(chan struct{}),
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

// errNoCertificate is returned by Serve for a TLSConfig without one.
var errNoCertificate = errors.New("handoff: srv.TLSConfig has no certificate (Certificates, GetCertificate or GetConfigForClient)")

// Serve serves until Shutdown and returns nil then.
func (s *HTTPServer) Serve() error {
	defer close(s.served)
	var err error
	if s.tls {
		c := s.srv.TLSConfig
		if len(c.Certificates) == 0 && c.GetCertificate == nil && c.GetConfigForClient == nil {
			return errNoCertificate
		}
		err = s.srv.ServeTLS(s.ln, "", "")
	} else {
		err = s.srv.Serve(s.ln)
	}
	if s.draining.Load() && (errors.Is(err, net.ErrClosed) || errors.Is(err, http.ErrServerClosed)) {
		return nil
	}
	return err
}

// Draining returns a channel that is closed when the drain starts.
func (s *HTTPServer) Draining() <-chan struct{} { return s.drainStarted }

func (s *HTTPServer) handler(inner http.Handler) http.Handler {
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

func (s *HTTPServer) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// goAway runs a hijacked connection's goingAway function.
func (s *HTTPServer) goAway(f func()) { s.away.Go(f) }

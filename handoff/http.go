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
)

// HTTPServer drains an *http.Server without losing a request (SYSTEMD.md,
// golang/go#65802). Shutdown starts the drain:
//
//   - The listener is closed; connections the kernel queued after that are
//     the successor's (the socket is shared).
//   - Every response whose header is written from then on carries
//     "Connection: close" (HTTP/1.1), or makes HTTP/2 send GOAWAY (NO_ERROR,
//     the last stream processed) ahead of the response's body, so the
//     client opens its next stream elsewhere; HTTP/2 connections still
//     without GOAWAY after IdleGrace (idle, or one long stream) get it
//     then. An HTTP/2 connection closes by itself once its streams are
//     done; the drain never closes one before the deadline.
//   - A keep-alive connection is closed once it has been idle for
//     IdleGrace (counted from the start of the drain at the earliest),
//     unless request bytes are on their way: waiting in the kernel, or
//     received since it went idle (net/http may hold part of a request in
//     its buffer while the connection still counts as idle).
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
	spare        spare // the socket, kept for Renew
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
		*lw = lameDuckWriter{ResponseWriter: w, s: s}
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

// drainConfig is what an Upgrader tells its servers' Shutdown.
type drainConfig struct {
	streamGrace  time.Duration
	newConnGrace time.Duration
}

type drainKey struct{}

func (s *HTTPServer) idleGrace() time.Duration {
	if s.IdleGrace > 0 {
		return s.IdleGrace
	}
	return DefaultIdleGrace
}

// newConnBound is how old a connection without a first request may get.
func (s *HTTPServer) newConnBound(ctx context.Context) time.Duration {
	if d := s.srv.ReadHeaderTimeout; d > 0 {
		return d
	}
	if s.NewConnGrace > 0 {
		return s.NewConnGrace
	}
	if dc, ok := ctx.Value(drainKey{}).(drainConfig); ok && dc.newConnGrace > 0 {
		return dc.newConnGrace
	}
	return DefaultNewConnGrace
}

// streamGrace is when running requests are cancelled; 0 means never.
func (s *HTTPServer) streamGrace(ctx context.Context) time.Duration {
	if s.StreamGrace > 0 {
		return s.StreamGrace
	}
	if dc, ok := ctx.Value(drainKey{}).(drainConfig); ok && dc.streamGrace > 0 {
		return dc.streamGrace
	}
	if dl, ok := ctx.Deadline(); ok {
		return max(time.Until(dl)*3/4, time.Millisecond)
	}
	return 0
}

// Shutdown drains; see HTTPServer. It must be called after Serve started.
func (s *HTTPServer) Shutdown(ctx context.Context) error {
	start := time.Now()
	var goingAway []func()
	first := false
	s.drainOnce.Do(func() {
		first = true
		goingAway = s.hijacks.startDrain(&s.draining)
		close(s.drainStarted)
	})
	s.spare.keep(ctx, s.ln)
	lnErr := s.ln.Close()
	if errors.Is(lnErr, net.ErrClosed) {
		lnErr = nil
	}
	if first {
		_ = s.hooks.Shutdown(ctx) // the user's RegisterOnShutdown functions
		for _, f := range goingAway {
			s.goAway(f)
		}
	}
	// Once Serve has returned, every accepted connection is counted.
	select {
	case <-s.served:
	case <-ctx.Done():
		return s.force(ctx)
	}
	grace, newBound, streamAt := s.idleGrace(), s.newConnBound(ctx), s.streamGrace(ctx)
	streamsCancelled := streamAt == 0
	// HTTP/2: a connection with requests gets GOAWAY with its first
	// response of the drain ("Connection: close", which net/http's
	// HTTP/2 turns into GOAWAY, sent before the response's body): its
	// client knows before the response ends, and opens its next stream
	// elsewhere. A GOAWAY at the drain's start would instead refuse the
	// streams already on their way (Go sends one GOAWAY, with the last
	// stream it has seen, not the two of RFC 9113 section 6.8). The rest,
	// idle ones and long streams, get it after IdleGrace, and a
	// connection that starts HTTP/2 late IdleGrace after it does.
	h2At := grace
	t := time.NewTimer(grace)
	defer t.Stop()
	for s.open.Load() > 0 || s.hijacks.count() > 0 {
		now := time.Now()
		next := s.sweep(now.UnixNano(), start.UnixNano(), grace, newBound)
		if since := now.Sub(start); !streamsCancelled {
			if since >= streamAt {
				s.cancelStreams()
				streamsCancelled = true
			} else {
				next = min(next, streamAt-since)
			}
		}
		if s.h2 != nil {
			if s.lateH2.Swap(false) {
				h2At = max(h2At, now.Sub(start)+grace)
			}
			if h2At > 0 {
				if since := now.Sub(start); since >= h2At {
					s.goAwayH2(ctx)
					h2At = 0
				} else {
					next = min(next, h2At-since)
				}
			}
		}
		t.Reset(max(next, time.Millisecond))
		select {
		case <-s.wake:
		case <-t.C:
		case <-ctx.Done():
			return s.force(ctx)
		}
	}
	done := make(chan struct{})
	go func() { s.away.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return s.force(ctx)
	}
	// Nothing is left: Shutdown returns at once and marks the server done.
	if err := s.srv.Shutdown(ctx); err != nil {
		return s.force(ctx)
	}
	return lnErr
}

// force closes whatever is left at the deadline.
func (s *HTTPServer) force(ctx context.Context) error {
	_ = s.srv.Close()
	s.hijacks.closeAll()
	return ctx.Err()
}

// sweep closes the HTTP/1 connections that are done: idle for at least
// grace with no request on its way, or without a first request for
// newBound. It returns when to look again.
func (s *HTTPServer) sweep(now, start int64, grace, newBound time.Duration) time.Duration {
	next := grace
	s.conns.Range(func(k, v any) bool {
		ci := v.(*connInfo)
		if ci.h2.Load() {
			return true // GOAWAY ends it
		}
		c := k.(net.Conn)
		since := ci.since.Load()
		switch http.ConnState(ci.state.Load()) {
		case http.StateNew:
			if age := time.Duration(now - since); age < newBound {
				next = min(next, newBound-age)
				return true
			}
			if pending(c) {
				return true // a first request is arriving after all
			}
		case http.StateIdle:
			if idle := time.Duration(now - max(since, start)); idle < grace {
				next = min(next, grace-idle)
				return true
			}
			if pending(c) {
				return true // net/http reads it now: active
			}
			if receivedSince(c, since) {
				// Part of a request is in net/http's buffer: give it the
				// time a new connection gets to complete it.
				if age := time.Duration(now - since); age < newBound {
					next = min(next, newBound-age)
					return true
				}
			}
		default:
			return true
		}
		_ = c.Close()
		return true
	})
	return next
}

// cancelStreams cancels the contexts of the requests still running.
func (s *HTTPServer) cancelStreams() {
	s.conns.Range(func(_, v any) bool {
		ci := v.(*connInfo)
		if ci.h2.Load() || http.ConnState(ci.state.Load()) == http.StateActive {
			ci.cancelled.Store(true)
			ci.cancel()
		}
		return true
	})
}

package drain

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// lameDuck is a running lame duck: the goroutine that closes idle
// connections, until stop is closed.
type lameDuck struct {
	start  time.Time
	window time.Duration // its spread
	stop   chan struct{}
	done   chan struct{}
}

// EnterLameDuck makes every response whose header is written from now on
// say "Connection: close" (HTTP/2: GOAWAY), and closes keep-alive
// connections once idle for IdleGrace with nothing on the wire (HTTP/2
// ones get GOAWAY), spread as SpreadWindow says, in a goroutine that
// LeaveLameDuck or Shutdown stop. Unlike Shutdown it closes no listener,
// runs no RegisterOnShutdown function, leaves Draining open, cancels no
// request and closes no connection that has not sent its first request:
// the Server keeps accepting and answering, and the clients move
// elsewhere as their connections end. It does nothing when the lame duck
// is on or Shutdown was called. Its goroutine ends at LeaveLameDuck or
// Shutdown: call one of them.
func (s *Server) EnterLameDuck() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lame != nil || s.shutting {
		return
	}
	l := &lameDuck{start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	l.window = s.spread(context.Background(), l.start)
	s.lame = l
	s.closing.Store(true)
	go func() {
		defer close(l.done)
		s.sweepUntil(l.stop, sweepPlan{start: l.start, h2At: l.window + s.idleGrace()})
	}()
}

// LeaveLameDuck turns the lame duck off: responses keep their connections
// open again and idle connections stay. Connections it closed (or told to
// go away) stay closed. It returns once the lame duck's goroutine has; it
// does nothing when the lame duck is off or Shutdown was called.
func (s *Server) LeaveLameDuck() {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.lame
	if l == nil || s.shutting {
		return
	}
	s.lame = nil
	close(l.stop)
	<-l.done
	s.closing.Store(false)
	s.conns.Range(func(_, v any) bool {
		v.(*connInfo).release.Store(0)
		return true
	})
}

// Shutdown drains (see the package doc): it closes the listeners, runs
// srv's RegisterOnShutdown functions (once per Server), closes Draining,
// lets every request finish and closes each connection when nothing is on
// its wire. It returns as soon as the last connection is gone (nil, or
// the error of closing a listener); when ctx ends first, it closes what is
// left and returns ctx.Err(). A lame duck in progress becomes the drain.
// Later calls wait as the first does.
func (s *Server) Shutdown(ctx context.Context) error {
	start := time.Now()
	s.mu.Lock()
	first := !s.shutting
	s.shutting = true
	l := s.lame
	s.lame = nil
	lns := s.lns
	s.mu.Unlock()
	plan := sweepPlan{start: start, closeNew: true}
	var goingAway []func()
	if first {
		window := time.Duration(0)
		if l != nil {
			// The connections got their turns in the lame duck already.
			close(l.stop)
			<-l.done
			plan.start = l.start
			window = max(time.Until(l.start.Add(l.window)), 0)
		} else {
			window = s.spread(ctx, start)
		}
		plan.h2At = window + s.idleGrace()
		s.closing.Store(true)
		goingAway = s.hijacks.startDrain(&s.draining)
		close(s.drainStarted)
	} else {
		plan.h2At = s.idleGrace()
	}
	var lnErr error
	for _, ln := range lns {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) && lnErr == nil {
			lnErr = err
		}
	}
	if first {
		_ = s.hooks.Shutdown(ctx) // the user's RegisterOnShutdown functions
		for _, f := range goingAway {
			s.goAway(f)
		}
	}
	// Once every Serve has returned, every accepted connection is counted.
	served := make(chan struct{})
	go func() { s.serving.Wait(); close(served) }()
	select {
	case <-served:
	case <-ctx.Done():
		<-served // the listeners are closed: Serve returns
		return s.force(ctx)
	}
	plan.streamAt = s.streamGrace(ctx)
	plan.newBound = s.newConnBound()
	plan.startDrain = start
	if !s.sweepUntil(ctx.Done(), plan) {
		return s.force(ctx)
	}
	done := make(chan struct{})
	go func() { s.away.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		// A goingAway function still running is the user's: Shutdown
		// returns at its deadline all the same.
		return s.force(ctx)
	}
	// Nothing is left: Shutdown returns at once and marks the server done.
	if err := s.srv.Shutdown(ctx); err != nil {
		return s.force(ctx)
	}
	return lnErr
}

// force closes whatever is left at the deadline.
func (s *Server) force(ctx context.Context) error {
	_ = s.srv.Close()
	s.hijacks.closeAll()
	return ctx.Err()
}

// sweepPlan is what a sweep loop closes, and when.
type sweepPlan struct {
	start      time.Time     // idle time counts from here at the earliest
	closeNew   bool          // close connections without a first request after newBound (the drain)
	newBound   time.Duration // how old a connection without a first request may get
	startDrain time.Time     // the drain's start, for streamAt; zero in the lame duck
	streamAt   time.Duration // after startDrain: cancel running requests; 0 never
	h2At       time.Duration // after start: GOAWAY to every HTTP/2 connection; 0 done
}

// sweepUntil closes connections as plan says until stop is closed (it
// returns false then) or, in the drain (plan.closeNew), until no
// connection is left (true).
func (s *Server) sweepUntil(stop <-chan struct{}, p sweepPlan) bool {
	grace := s.idleGrace()
	newBound := p.newBound
	if !p.closeNew {
		newBound = s.newConnBound() // only bounds a partial request's wait
	}
	streamsCancelled := p.streamAt == 0
	t := time.NewTimer(grace)
	defer t.Stop()
	var last time.Time
	for !p.closeNew || s.open.Load() > 0 || s.hijacks.count() > 0 {
		now := time.Now()
		// A poke comes for every connection that goes idle or closes: a
		// sweep per poke would make the drain quadratic in the
		// connections. Sweeps are at least sweepGap apart, which bounds
		// their share of a core whatever the count.
		if wait := last.Add(sweepGap(s.open.Load())).Sub(now); wait > 0 {
			t.Reset(wait)
			select {
			case <-s.wake:
			case <-t.C:
			case <-stop:
				return false
			}
			continue
		}
		last = now
		next := s.sweep(now.UnixNano(), p.start.UnixNano(), grace, newBound, p.closeNew)
		if since := now.Sub(p.startDrain); !streamsCancelled {
			if since >= p.streamAt {
				s.cancelStreams()
				streamsCancelled = true
			} else {
				next = min(next, p.streamAt-since)
			}
		}
		// HTTP/2: a connection with requests gets GOAWAY with its first
		// response after "Connection: close" is decided (net/http's
		// HTTP/2 turns it into GOAWAY, sent before the response's body):
		// its client knows before the response ends, and opens its next
		// stream elsewhere. A GOAWAY at the start would instead refuse
		// the streams already on their way (Go sends one GOAWAY, with the
		// last stream it has seen, not the two of RFC 9113 section 6.8).
		// The rest, idle ones and long streams, get it after IdleGrace
		// (and the spread's window), and a connection that starts HTTP/2
		// late IdleGrace after it does.
		if s.h2 != nil {
			if s.lateH2.Swap(false) {
				p.h2At = max(p.h2At, now.Sub(p.start)+grace)
			}
			if p.h2At > 0 {
				if since := now.Sub(p.start); since >= p.h2At {
					s.goAwayH2()
					p.h2At = 0
				} else {
					next = min(next, p.h2At-since)
				}
			}
		}
		t.Reset(max(next, time.Millisecond))
		select {
		case <-s.wake:
		case <-t.C:
		case <-stop:
			return false
		}
	}
	return true
}

// sweep closes the HTTP/1 connections that are done: idle for at least
// grace with no request on its way, or (closeNew) without a first request
// for newBound. It returns when to look again.
func (s *Server) sweep(now, start int64, grace, newBound time.Duration, closeNew bool) time.Duration {
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
			if !closeNew {
				return true // its first response will say "Connection: close"
			}
			if age := time.Duration(now - since); age < newBound {
				next = min(next, newBound-age)
				return true
			}
			if pending(c) {
				return true // a first request is arriving after all
			}
		case http.StateIdle:
			if idle := time.Duration(now - max(since, start, ci.release.Load())); idle < grace {
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

// sweepGap is the least time between two sweeps of n connections: a
// sweep costs well under a microsecond per connection.
func sweepGap(n int64) time.Duration {
	return max(time.Millisecond, time.Duration(n)*2*time.Microsecond)
}

// spreadWindow is the reconnect spread for n open connections (see
// SpreadWindow); 0 means none.
func (s *Server) spreadWindow(ctx context.Context, n int64) time.Duration {
	w := s.SpreadWindow
	switch {
	case w < 0 || n < 2:
		return 0
	case w == 0:
		if n < spreadMinConns {
			return 0
		}
		w = min(time.Duration(n)*DefaultSpreadPerConn, DefaultSpreadMax)
	}
	if dl, ok := ctx.Deadline(); ok {
		w = min(w, time.Until(dl)/2)
	}
	return max(w, 0)
}

// spread gives every open connection its turn, evenly over the window,
// which it returns. Connections accepted later have none: they are
// released at once.
func (s *Server) spread(ctx context.Context, start time.Time) time.Duration {
	n := s.open.Load()
	w := s.spreadWindow(ctx, n)
	if w == 0 {
		return 0
	}
	step := float64(w) / float64(n)
	i := 0
	s.conns.Range(func(_, v any) bool {
		at := min(time.Duration(step*float64(i)), w)
		v.(*connInfo).release.Store(start.Add(at).UnixNano())
		i++
		return true
	})
	return w
}

// cancelStreams cancels the contexts of the requests still running.
func (s *Server) cancelStreams() {
	s.conns.Range(func(_, v any) bool {
		ci := v.(*connInfo)
		if ci.h2.Load() || http.ConnState(ci.state.Load()) == http.StateActive {
			ci.cancelled.Store(true)
			ci.cancel()
		}
		return true
	})
}

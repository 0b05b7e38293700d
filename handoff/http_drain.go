package handoff

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

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
		s.window = s.spread(ctx, start)
		goingAway = s.hijacks.startDrain(&s.draining)
		close(s.drainStarted)
	})
	s.spare.keep(ctx, s.ln)
	lnErr := s.ln.Close()
	markStage(stageDrain)
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
	h2At := s.window + grace
	t := time.NewTimer(grace)
	defer t.Stop()
	var last time.Time
	for s.open.Load() > 0 || s.hijacks.count() > 0 {
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
			case <-ctx.Done():
				return s.force(ctx)
			}
			continue
		}
		last = now
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
func (s *HTTPServer) spreadWindow(ctx context.Context, n int64) time.Duration {
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

// spread gives every open connection its turn in the drain, evenly over
// the window, which it returns. Connections accepted later (before Serve
// returns) have none: they are released at the drain's start.
func (s *HTTPServer) spread(ctx context.Context, start time.Time) time.Duration {
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

//go:build linux

package drain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testproc"
)

// TestHTTPDrainSpread: with SpreadWindow, the drain's "Connection: close"
// (busy keep-alive connections) and idle closes are spread over the
// window, not all at its start; no request fails, and the window is cut
// to half of what the deadline leaves, so the drain ends before it.
func TestHTTPDrainSpread(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	const busy, idle = 100, 100
	s, addr, served := drainServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	// Long enough that a busy client, which waits 5 ms between its
	// requests, is never idle that long, even on a loaded machine.
	s.IdleGrace = 400 * time.Millisecond
	s.SpreadWindow = time.Minute // cut to half of the 4 s deadline
	const timeout = 4 * time.Second
	window := timeout / 2

	var (
		mu       sync.Mutex
		failures []string
		ends     []time.Duration // busy: the "Connection: close" answer; idle: EOF
		idleEnds []time.Duration
	)
	fail := func(err error) {
		mu.Lock()
		failures = append(failures, err.Error())
		mu.Unlock()
	}
	var drainStart time.Time
	started := make(chan struct{})
	var wg sync.WaitGroup
	conns := make([]*httpConn, 0, busy+idle)
	for range busy + idle {
		c, err := dialHTTP("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.do("/"); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	waitConns(t, s, busy+idle)
	for i, c := range conns {
		wg.Go(func() {
			if i >= busy {
				// Idle: the drain closes it; nothing may arrive first.
				<-started
				if b, err := c.br.ReadByte(); !errors.Is(err, io.EOF) {
					fail(fmt.Errorf("idle connection: read %q, %w; want EOF", b, err))
					return
				}
				mu.Lock()
				idleEnds = append(idleEnds, time.Since(drainStart))
				mu.Unlock()
				return
			}
			for n := 0; ; n++ {
				h, err := c.do("/")
				if err != nil {
					fail(fmt.Errorf("busy connection, request %d: %w", n, err))
					return
				}
				if h.Get("Connection") == "close" {
					select {
					case <-started:
					default:
						fail(errors.New("busy connection: Connection: close before the drain"))
						return
					}
					mu.Lock()
					ends = append(ends, time.Since(drainStart))
					mu.Unlock()
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	time.Sleep(50 * time.Millisecond) // the busy clients are going
	drainStart = time.Now()
	shut := shutdownAsync(s, timeout)
	close(started)
	wg.Wait()
	drained(t, shut, served)

	if len(failures) > 0 {
		t.Fatalf("%d failures, first: %s", len(failures), failures[0])
	}
	if len(ends) != busy || len(idleEnds) != idle {
		t.Fatalf("%d busy and %d idle connections ended, want %d and %d", len(ends), len(idleEnds), busy, idle)
	}
	// A slow machine delays closes, never brings them forward: without
	// the spread every busy connection ends in the window's first tenth
	// (its next answer), and every idle one at IdleGrace.
	for _, g := range []struct {
		name string
		d    []time.Duration
	}{{"busy", ends}, {"idle", idleEnds}} {
		early, late := 0, 0
		for _, d := range g.d {
			if d < window/10 {
				early++
			}
			if d >= window/2 {
				late++
			}
		}
		t.Logf("%s: %d of %d ended in the window's first tenth, %d in its second half or later", g.name, early, len(g.d), late)
		if early > len(g.d)/2 {
			t.Errorf("%s: %d of %d connections ended in the first tenth of the spread's window", g.name, early, len(g.d))
		}
		if late < len(g.d)/4 {
			t.Errorf("%s: %d of %d connections ended in the second half of the spread's window or later, want a quarter at least", g.name, late, len(g.d))
		}
	}
}

// TestSpreadWindow: the window's default, its bounds and its overrides.
func TestSpreadWindow(t *testing.T) {
	bg := context.Background()
	dl, cancel := context.WithTimeout(bg, time.Second)
	defer cancel()
	for _, c := range []struct {
		ctx     context.Context
		set     time.Duration
		n       int64
		wantMin time.Duration
		wantMax time.Duration
	}{
		{bg, 0, 10, 0, 0}, // few connections: none
		{bg, 0, 1000, 100 * time.Millisecond, 100 * time.Millisecond}, // proportional
		{bg, 0, 100000, DefaultSpreadMax, DefaultSpreadMax},           // bounded
		{bg, -1, 100000, 0, 0}, // disabled
		{bg, 3 * time.Second, 10, 3 * time.Second, 3 * time.Second}, // set
		{bg, 3 * time.Second, 1, 0, 0},                              // nothing to spread
		{dl, time.Minute, 10, 1, 500 * time.Millisecond},            // half of what the deadline leaves
	} {
		s := &Server{SpreadWindow: c.set}
		if got := s.spreadWindow(c.ctx, c.n); got < c.wantMin || got > c.wantMax {
			t.Errorf("SpreadWindow %v, %d connections: window %v, want %v to %v", c.set, c.n, got, c.wantMin, c.wantMax)
		}
	}
}

package handoff

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A paused listener's Accept waits, for any number of pauses and resumes
// in any order with accepts and dials, and never returns an error of the
// pause's (the timeout it uses to wake a parked Accept): before, a resume
// let an Accept meet the pause's deadline, which net/http logged and
// backed off on.
func TestListenerPauseResume(t *testing.T) {
	checkLeaks(t)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := pausable(inner).(*listener)
	var accepted atomic.Int64
	errc := make(chan error, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				errc <- err
				return
			}
			accepted.Add(1)
			_ = c.Close()
		}
	}()
	const rounds = 200
	var wg sync.WaitGroup
	for i := range rounds {
		l.pause()
		if i%2 == 0 {
			wg.Go(func() { // accepted after a resume
				c, err := net.Dial("tcp", l.Addr().String())
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = c.Read(make([]byte, 1))
				_ = c.Close()
			})
		}
		l.resume()
	}
	wg.Wait()
	if n := accepted.Load(); n != rounds/2 {
		t.Errorf("accepted %d connections, want %d", n, rounds/2)
	}

	// Paused: a connection waits in the backlog until the resume. An
	// Accept already past the socket's deadline check when the pause came
	// may take one more connection, as documented; the dial waits until
	// the Accept is parked, so that this asserts the pause itself.
	l.pause()
	for deadline := time.Now().Add(wait); ; time.Sleep(time.Millisecond) {
		l.mu.Lock()
		parked := l.parked
		l.mu.Unlock()
		if parked == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Accept not parked in the pause after %v", wait)
		}
	}
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(50 * time.Millisecond) // not asserted on timing: a late accept is a pass
	if n := accepted.Load(); n != rounds/2 {
		t.Errorf("accepted while paused: %d, want %d", n, rounds/2)
	}
	l.resume()
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("read after resume: %v, want EOF (accepted and closed)", err)
	}

	// Close ends an Accept waiting in a pause with net.ErrClosed.
	l.pause()
	_ = l.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
	}
}

// The effects of the lifecycle's transitions on the servers, in one
// process: watching pauses (no new connection accepted, responses say
// "Connection: close", no hook run, nothing drained), a rollback resumes,
// and the drain, with the hooks, runs once at the end, started by the
// transition into stopped without Wait. Before, the cut-over drained and
// ran the hooks, and a rollback rebuilt the servers, running the hooks
// again at the next cut-over.
func TestTransitionEffects(t *testing.T) {
	checkLeaks(t)
	up, err := New(Config{NoSignals: true, NoControl: true, DrainTimeout: wait, WatchWindow: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	ln, err := up.Listen("http", "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var hooks atomic.Int32
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hooks %d\n", hooks.Load())
	})}
	srv.RegisterOnShutdown(func() { hooks.Add(1) })
	up.Serve(HTTP(srv, ln))
	if err := up.Ready(); err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	enter := func(ps ...phase) {
		t.Helper()
		up.mu.Lock()
		defer up.mu.Unlock()
		for _, p := range ps {
			if err := up.enterLocked(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	get := func(c net.Conn, br *bufio.Reader) (string, bool) {
		t.Helper()
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.TrimSpace(string(b)), resp.Close // "Connection: close"
	}
	for round := range 3 {
		keep, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		kr := bufio.NewReader(keep)
		if body, conn := get(keep, kr); body != "hooks 0" || conn {
			t.Fatalf("round %d, serving: %q, Connection: close %v", round, body, conn)
		}
		enter(phaseUpgrading, phaseWatching)
		// A connection that arrives while paused waits in the backlog;
		// the keep-alive one is answered, told to close.
		waiting, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if body, conn := get(keep, kr); body != "hooks 0" || !conn {
			t.Fatalf("round %d, paused: %q, Connection: close %v", round, body, conn)
		}
		_ = keep.Close()
		enter(phaseServing) // the rollback
		if body, conn := get(waiting, bufio.NewReader(waiting)); body != "hooks 0" || conn {
			t.Fatalf("round %d, resumed: %q, Connection: close %v", round, body, conn)
		}
		_ = waiting.Close()
	}
	up.Stop()
	select {
	case <-up.drained:
	case <-time.After(wait):
		t.Fatal("not drained after Stop, without Wait")
	}
	if n := hooks.Load(); n != 1 {
		t.Errorf("hooks ran %d times, want once", n)
	}
	if !isClosed(up.running[0].done) {
		t.Error("Serve has not returned after the drain")
	}
	if err := up.Wait(); err != nil {
		t.Errorf("Wait: %v", err)
	}
}

// Package gochild is the HTTP server that baton's tests run as a CMD
// written the way a Go user writes one with go-systemd, knowing nothing of
// baton: its socket from activation (named http), readiness through
// daemon.SdNotify, and a drain on SIGTERM that loses no request. Every
// answer's body and X-Pid header are its pid.
//
// The drain: the listener is closed, every answer carries Connection:
// close for a lame-duck period and while a connection's first request is
// still unread (net/http drops a request it reads after Shutdown began),
// then until each keep-alive connection has ended after its next answer
// (so that Shutdown closes no idle connection a client is sending on,
// golang/go#65802, unless the client stays silent for 2s), and only then
// Shutdown.
package gochild

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
)

// Options shape one run of the server.
type Options struct {
	// Name prefixes its messages on stderr.
	Name string
	// LameDuck is the shortest time it answers with Connection: close
	// before Shutdown; 100ms when zero.
	LameDuck time.Duration
	// NoReady: it never says READY=1.
	NoReady bool
	// Die: DieAfter after it is ready it drains as on SIGTERM and exits
	// 3, a crash that loses no request.
	Die      bool
	DieAfter time.Duration
}

// Serve runs the server until SIGTERM (or Die) and its drain are over
// and returns its exit status: 0, 3 after Die, 1 when serving failed,
// 3 when there is no socket named http.
func Serve(o Options) int {
	if o.LameDuck == 0 {
		o.LameDuck = 100 * time.Millisecond
	}
	lns, err := activation.ListenersWithNames()
	if err != nil || len(lns["http"]) != 1 {
		fmt.Fprintf(os.Stderr, "%s: want one socket named http: %v, %v\n", o.Name, lns, err)
		return 3
	}
	ln := lns["http"][0]
	var lameDuck atomic.Bool
	var fresh atomic.Int64 // accepted, first request not read yet
	var open atomic.Int64  // not closed yet
	var seen sync.Map
	pid := strconv.Itoa(os.Getpid())
	srv := &http.Server{
		ConnState: func(c net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				open.Add(1)
				fresh.Add(1)
				seen.Store(c, true)
				return
			case http.StateClosed, http.StateHijacked:
				open.Add(-1)
			}
			if _, ok := seen.LoadAndDelete(c); ok {
				fresh.Add(-1)
			}
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-Pid", pid)
			if lameDuck.Load() {
				w.Header().Set("Connection", "close")
			}
			_, _ = io.WriteString(w, pid+"\n")
		}),
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if !o.NoReady {
		if _, err := daemon.SdNotify(false, "READY=1\nSTATUS=serving from "+pid); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", o.Name, err)
		}
		_, _ = daemon.SdNotify(false, "WATCHDOG=1")
	}
	code := 0
	var die <-chan time.Time
	if o.Die {
		die = time.After(o.DieAfter)
	}
	select {
	case <-term:
	case <-die:
		code = 3
	}
	_ = ln.Close()
	lameDuck.Store(true)
	time.Sleep(o.LameDuck)
	for i := 0; i < 500 && fresh.Load() > 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	for i := 0; i < 200 && open.Load() > 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = srv.Shutdown(ctx)
	cancel()
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		return 1
	}
	return code
}

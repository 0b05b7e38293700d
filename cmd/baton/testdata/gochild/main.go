// Command gochild is an HTTP server as a Go user writes it with go-systemd:
// its socket from activation (named http), readiness through
// daemon.SdNotify, and a drain on SIGTERM. The body and X-Pid are its pid.
// With $GOCHILD_DIE_AFTER (a duration) it drains by itself that long after
// it is ready and exits 3: a crash that loses no request.
package main

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

func main() {
	lns, err := activation.ListenersWithNames()
	if err != nil || len(lns["http"]) != 1 {
		fmt.Fprintf(os.Stderr, "gochild: want one socket named http: %v, %v\n", lns, err)
		os.Exit(3)
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
			case http.StateClosed, http.StateHijacked:
				open.Add(-1)
			}
			if st == http.StateNew {
				fresh.Add(1)
				seen.Store(c, true)
			} else if _, ok := seen.LoadAndDelete(c); ok {
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
	if _, err := daemon.SdNotify(false, "READY=1\nSTATUS=serving from "+pid); err != nil {
		fmt.Fprintln(os.Stderr, "gochild:", err)
	}
	_, _ = daemon.SdNotify(false, "WATCHDOG=1")
	code := 0
	if d, err := time.ParseDuration(os.Getenv("GOCHILD_DIE_AFTER")); err == nil {
		select {
		case <-term:
		case <-time.After(d):
			code = 3
		}
	} else {
		<-term
	}
	// Stop accepting, answer with Connection: close for a while, and
	// never Shutdown while a connection's first request is unread.
	_ = ln.Close()
	lameDuck.Store(true)
	time.Sleep(100 * time.Millisecond)
	for i := 0; i < 500 && fresh.Load() > 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	// And let every keep-alive connection end after its next response, so
	// that Shutdown closes no idle connection a client is sending on
	// (golang/go#65802) unless the client stays silent for 2s.
	for i := 0; i < 200 && open.Load() > 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = srv.Shutdown(ctx)
	cancel()
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		os.Exit(1)
	}
	os.Exit(code)
}

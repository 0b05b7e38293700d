// Command sdserver is the e2e tests' plain systemd-aware HTTP server, written
// the way a user writes one with go-systemd and nothing of baton: it takes
// its listener from LISTEN_FDS (the socket named by -name, else the first),
// or listens on -listen itself, reports READY=1 and STOPPING=1, pings the
// watchdog when WATCHDOG_USEC asks for it, and on SIGTERM drains without
// dropping a request: it stops accepting, answers with Connection: close
// until its connections are closed or a lame-duck period ends, then shuts
// down; with -exit-at-term it exits at once instead.
//
// GET / answers 200 with the headers X-Pid and X-Generation (-generation);
// ?ms=N delays the answer by N milliseconds.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sdserver:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on when not socket-activated")
	name := flag.String("name", "http", "socket name to serve (LISTEN_FDNAMES)")
	generation := flag.String("generation", "1", "value of the X-Generation header")
	lameDuck := flag.Duration("lame-duck", time.Second, "how long at most to answer with Connection: close before shutting down")
	exitAtTerm := flag.Bool("exit-at-term", false, "exit at once on SIGTERM, dropping what is in flight (a server with no drain)")
	flag.Parse()

	ln, err := listener(*name, *listen)
	if err != nil {
		return err
	}
	pid := strconv.Itoa(os.Getpid())
	var draining atomic.Bool
	var open atomic.Int64 // connections not yet closed
	srv := &http.Server{
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				open.Add(1)
			case http.StateClosed, http.StateHijacked:
				open.Add(-1)
			}
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if draining.Load() {
				// Lame duck: every client learns to go elsewhere.
				w.Header().Set("Connection", "close")
			}
			if ms, err := strconv.Atoi(r.URL.Query().Get("ms")); err == nil && ms > 0 {
				time.Sleep(time.Duration(ms) * time.Millisecond)
			}
			w.Header().Set("X-Pid", pid)
			w.Header().Set("X-Generation", *generation)
			fmt.Fprintf(w, "pid %s generation %s\n", pid, *generation)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	stopWatchdog := watchdog()
	defer stopWatchdog()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady+"\nSTATUS=serving as pid "+pid); err != nil {
		return fmt.Errorf("notify ready: %w", err)
	}
	fmt.Println("sdserver: serving on", ln.Addr(), "as pid", pid, "generation", *generation)
	select {
	case err := <-serveErr:
		return err
	case <-sig:
	}
	if *exitAtTerm {
		os.Exit(0)
	}
	_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
	// Stop accepting (the socket itself stays open in systemd and in a
	// successor), tell keep-alive clients to go away, then shut down.
	// Not SetKeepAlivesEnabled(false): it closes idle connections at once,
	// racing a client that is sending its next request on one.
	_ = ln.Close()
	draining.Store(true)
	for end := time.Now().Add(*lameDuck); open.Load() > 0 && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		return err
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		return err
	}
	fmt.Println("sdserver: pid", pid, "stopped")
	return nil
}

// listener returns the activated socket named name (or the only one), or
// listens on addr when the process was not socket-activated.
func listener(name, addr string) (net.Listener, error) {
	named, err := activation.ListenersWithNames()
	if err != nil {
		return nil, fmt.Errorf("activation: %w", err)
	}
	if lns := named[name]; len(lns) > 0 && lns[0] != nil {
		return lns[0], nil
	}
	for _, lns := range named {
		for _, ln := range lns {
			if ln != nil {
				return ln, nil
			}
		}
	}
	return net.Listen("tcp", addr)
}

// watchdog pings systemd's watchdog at half its interval when it is enabled
// for this process, until the returned func is called.
func watchdog() func() {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(interval / 2)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_, _ = daemon.SdNotify(false, daemon.SdNotifyWatchdog)
			}
		}
	}()
	return func() { close(done); <-finished }
}

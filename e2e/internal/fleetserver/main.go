// Command fleetserver is the e2e fleet test's bad release: an HTTP server
// built with handoff, taking the same flags as examples/http (-listen,
// -watch-window), that serves like it on every host but one whose own state
// trips a fault. Where the file named by -crash-file exists (default
// /etc/fleetserver-crash, a path in the host's own /etc), it takes the
// socket, reports ready and exits 1 after -crash-after, without ever
// accepting: a version that dies in its watch window there, on that host
// only. It accepts nothing, so the connections that reach the socket while
// it lives wait in the listen queue and are served by the old generation
// once it has rolled back: the fault costs no request.
//
// GET / answers 200 with the headers X-Pid, X-Generation and X-Version
// (-version, default "bad"); GET /healthz answers 200 "ok".
package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/batonhq/baton/handoff"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fleetserver:", err)
		os.Exit(1)
	}
}

// errCrash is the fault: the exit of a version that dies in its window.
var errCrash = errors.New("crash file present: exiting in the watch window")

func run() error {
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on when not socket-activated")
	window := flag.Duration("watch-window", 0, "handoff's Config.WatchWindow")
	crashFile := flag.String("crash-file", "/etc/fleetserver-crash", "where this file exists, exit 1 -crash-after the readiness, accepting nothing")
	crashAfter := flag.Duration("crash-after", 300*time.Millisecond, "how long after the readiness to exit where -crash-file exists")
	version := flag.String("version", "bad", "value of the X-Version header")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	up, err := handoff.New(handoff.Config{Logger: log, WatchWindow: *window})
	if err != nil {
		return err
	}
	ln, err := up.Listen("http", "tcp", *listen)
	if err != nil {
		up.Close()
		return err
	}
	if _, err := os.Stat(*crashFile); err == nil {
		// A crash, not a stop: no Close, nothing handed back.
		if err := up.Ready(); err != nil {
			return err
		}
		time.Sleep(*crashAfter)
		return fmt.Errorf("%s: %w", *crashFile, errCrash)
	}
	defer up.Close()
	pid, gen := strconv.Itoa(os.Getpid()), strconv.Itoa(up.Generation())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Pid", pid)
		w.Header().Set("X-Generation", gen)
		w.Header().Set("X-Version", *version)
		fmt.Fprintf(w, "pid %s generation %s version %s\n", pid, gen, *version)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	up.Serve(handoff.HTTP(srv, ln))
	if err := up.Ready(); err != nil {
		return err
	}
	return up.Wait()
}

// Command websocket is a WebSocket echo server upgraded in place with
// handoff: SIGHUP (or `baton reload --pid PID`) starts a new process on the
// same listening socket, and this one closes its WebSockets with status
// 1001 (Going Away) and exits once they are closed.
//
//	GET /ws   a WebSocket that echoes each message (X-Pid and X-Generation
//	          in the 101 response name the process)
//
// When its generation drains, each connection is closed with 1001 and the
// reason "restarting: echoed N": every message the server took before it
// decided to go away was echoed, N of them, before the close frame; the
// messages it reads after that are not (they crossed the close frame; a
// client sends them again on its next connection, which reaches the next
// generation). handoff.Hijacked tells the connection to go away and keeps
// the process until it is closed (echo.go).
//
// Socket name "http" when socket-activated; -listen otherwise.
package main

import (
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
	var cfg config
	flag.StringVar(&cfg.listen, "listen", "127.0.0.1:8080", "address to listen on when not socket-activated")
	flag.StringVar(&cfg.pidfile, "pidfile", "", "write the serving process's pid to this file")
	flag.DurationVar(&cfg.drainTimeout, "drain-timeout", handoff.DefaultDrainTimeout, "bound on a generation's drain, then its connections are closed")
	flag.Parse()
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "websocket:", err)
		os.Exit(1)
	}
}

type config struct {
	listen       string
	pidfile      string
	drainTimeout time.Duration
}

func run(cfg config) error {
	up, err := handoff.New(handoff.Config{
		PIDFile:      cfg.pidfile,
		DrainTimeout: cfg.drainTimeout,
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		return err
	}
	defer up.Close()
	ln, err := up.Listen("http", "tcp", cfg.listen)
	if err != nil {
		return err
	}
	pid, gen := strconv.Itoa(os.Getpid()), strconv.Itoa(up.Generation())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Pid", pid)
		w.Header().Set("X-Generation", gen)
		echo(w, r)
	})
	up.Serve(handoff.HTTP(&http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, ln))
	if err := up.Ready(); err != nil {
		return err
	}
	return up.Wait()
}

// Command http is an HTTP server upgraded in place with handoff: send it
// SIGHUP (or run `baton reload --pid PID`) and a new process takes over the
// listening socket while this one finishes its requests.
//
//	GET /        answers with the pid and generation (body, X-Pid, X-Generation)
//	GET /?ms=N   sleeps N milliseconds first (at most 10 s)
//	GET /healthz 200 "ok", or 503 "stopping" once a stop was requested:
//	             with -stop-delay D it goes on serving D after SIGTERM,
//	             so a load balancer polling /healthz takes it out first
//	GET /events  Server-Sent Events, the pid every 100 ms; the stream ends
//	             cleanly when this generation drains, so the client
//	             reconnects, to the successor
//
// Socket name "http" when socket-activated; -listen otherwise.
// -tls-cert FILE and -tls-key FILE serve HTTPS, h2 and http/1.1 by ALPN.
// -max-draining N caps the generations draining at once (handoff's
// Config.MaxDraining: 0 for its default, negative for no cap).
// -watch-window D keeps the old generation after an upgrade for D, not
// accepting but holding the main PID: a new version that dies within D is
// rolled back, the old one serving again (Config.WatchWindow).
package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/batonhq/baton/handoff"
)

// stopDelay is Config.StopDelay.
var stopDelay = flag.Duration("stop-delay", 0, "after SIGTERM, go on serving this long (/healthz says 503) before draining")

// watchWindow is Config.WatchWindow.
var watchWindow = flag.Duration("watch-window", 0, "after an upgrade, keep this generation (not accepting, holding the main PID) this long and serve again if the new one dies (0: hand over at once)")

// maxDraining is Config.MaxDraining.
var maxDraining = flag.Int("max-draining", 0, "at most this many generations drain at once, the oldest are killed beyond (0: handoff's default, negative: no cap)")

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on when not socket-activated")
	pidfile := flag.String("pidfile", "", "write the serving process's pid to this file")
	flag.Parse()
	if err := run(*listen, *pidfile); err != nil {
		fmt.Fprintln(os.Stderr, "http:", err)
		os.Exit(1)
	}
}

func run(listen, pidfile string) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	up, err := handoff.New(handoff.Config{PIDFile: pidfile, Logger: log, StopDelay: *stopDelay, MaxDraining: *maxDraining, WatchWindow: *watchWindow})
	if err != nil {
		return err
	}
	defer up.Close()

	ln, err := up.Listen("http", "tcp", listen)
	if err != nil {
		return err
	}
	pid, gen := strconv.Itoa(os.Getpid()), strconv.Itoa(up.Generation())
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" {
				healthz(w, up)
				return
			}
			if ms, err := strconv.Atoi(r.URL.Query().Get("ms")); err == nil && ms > 0 {
				time.Sleep(min(time.Duration(ms)*time.Millisecond, 10*time.Second))
			}
			w.Header().Set("X-Pid", pid)
			w.Header().Set("X-Generation", gen)
			fmt.Fprintf(w, "pid %s generation %s\n", pid, gen)
		}),
	}
	mux := http.NewServeMux()
	mux.Handle("GET /events", events(pid))
	mux.Handle("/", srv.Handler) // the rest
	srv.Handler = mux
	if srv.TLSConfig, err = serverTLS(); err != nil { // nil: plain HTTP
		return err
	}
	up.Serve(handoff.HTTP(srv, ln))
	if err := up.Ready(); err != nil {
		return err
	}
	return up.Wait()
}

// healthz answers 200 "ok", or 503 "stopping" once up is stopping.
func healthz(w http.ResponseWriter, up *handoff.Upgrader) {
	select {
	case <-up.Stopping():
		http.Error(w, "stopping", http.StatusServiceUnavailable)
	default:
		_, _ = io.WriteString(w, "ok\n")
	}
}

// Command metrics is an HTTP server upgraded in place with handoff, like
// examples/http, that exports the state of its generations to Prometheus:
// every scrape of /metrics reads the Upgrader's Status once (a
// prometheus.Collector, nothing polls in the background).
//
//	GET /         answers with the pid and generation (body, X-Pid, X-Generation)
//	GET /?ms=N    the same at once, then holds the response open N ms (at
//	              most 10 s) or until the client goes away: a request in
//	              flight that a drain waits for
//	GET /metrics  the Prometheus text format:
//	              baton_generation                      gauge
//	              baton_upgrades_total{outcome=...}     counter: ok, failed, abandoned
//	              baton_draining_generations            gauge
//	              baton_draining_connections            gauge (generations whose count is unknown are left out)
//	              baton_handoff_seconds                 histogram, 1 ms to 10 s
//
// The upgrade counters and the hand-over durations come from
// Status.Counters, which travel to each successor with the history: they
// carry on across upgrades instead of starting again at every generation.
// The histogram covers the last handoff.MaxHistory upgrades only (see
// collector). A scrape while older generations drain asks each of them
// for its connection count over its control socket, a quarter second at
// most.
//
// Socket name "http" when socket-activated; -listen otherwise. Send it
// SIGHUP (or run `baton reload --pid PID`) to upgrade it.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/batonhq/baton/handoff"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on when not socket-activated")
	pidfile := flag.String("pidfile", "", "write the serving process's pid to this file")
	flag.Parse()
	if err := run(*listen, *pidfile); err != nil {
		fmt.Fprintln(os.Stderr, "metrics:", err)
		os.Exit(1)
	}
}

func run(listen, pidfile string) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	up, err := handoff.New(handoff.Config{PIDFile: pidfile, Logger: log})
	if err != nil {
		return err
	}
	defer up.Close()

	ln, err := up.Listen("http", "tcp", listen)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(newCollector(up.Status)); err != nil {
		return fmt.Errorf("register collector: %w", err)
	}
	pid, gen := strconv.Itoa(os.Getpid()), strconv.Itoa(up.Generation())
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Pid", pid)
		w.Header().Set("X-Generation", gen)
		fmt.Fprintf(w, "pid %s generation %s\n", pid, gen)
		if ms, err := strconv.Atoi(r.URL.Query().Get("ms")); err == nil && ms > 0 {
			hold(w, r, min(time.Duration(ms)*time.Millisecond, 10*time.Second))
		}
	})
	up.Serve(handoff.HTTP(&http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, ln))
	if err := up.Ready(); err != nil {
		return err
	}
	return up.Wait()
}

// hold sends what w has so far and keeps the response open for d, or until
// the client goes away or the drain's StreamGrace cancels the request.
func hold(w http.ResponseWriter, r *http.Request, d time.Duration) {
	if err := http.NewResponseController(w).Flush(); err != nil {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}

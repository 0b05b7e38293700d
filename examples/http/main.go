// Command http is an HTTP server upgraded in place with handoff: send it
// SIGHUP (or run `baton reload --pid PID`) and a new process takes over the
// listening socket while this one finishes its requests.
//
//	GET /        answers with the pid and generation (body, X-Pid, X-Generation)
//	GET /?ms=N   sleeps N milliseconds first (at most 10 s)
//
// Flags:
//
//	-listen ADDR        address to bind when not socket-activated (socket name "http")
//	-pidfile FILE       write the serving generation's pid to FILE
//	-tls-cert FILE      serve HTTPS, h2 and http/1.1 by ALPN, with this PEM
//	-tls-key FILE       certificate (chain) and key
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
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on when not socket-activated")
	pidfile := flag.String("pidfile", "", "write the serving process's pid to this file")
	tlsCert := flag.String("tls-cert", "", "serve HTTPS (h2 and http/1.1) with this PEM certificate (chain)")
	tlsKey := flag.String("tls-key", "", "the PEM private key of -tls-cert")
	flag.Parse()
	if err := run(*listen, *pidfile, tlsFiles{cert: *tlsCert, key: *tlsKey}); err != nil {
		fmt.Fprintln(os.Stderr, "http:", err)
		os.Exit(1)
	}
}

func run(listen, pidfile string, tf tlsFiles) error {
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
	tlsConfig, err := tf.config()
	if err != nil {
		return err
	}
	pid, gen := strconv.Itoa(os.Getpid()), strconv.Itoa(up.Generation())
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if ms, err := strconv.Atoi(r.URL.Query().Get("ms")); err == nil && ms > 0 {
			time.Sleep(min(time.Duration(ms)*time.Millisecond, 10*time.Second))
		}
		w.Header().Set("X-Pid", pid)
		w.Header().Set("X-Generation", gen)
		fmt.Fprintf(w, "pid %s generation %s\n", pid, gen)
	})
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler:           mux,
		TLSConfig:         tlsConfig, // nil: plain HTTP
	}
	up.Serve(handoff.HTTP(srv, ln))
	if err := up.Ready(); err != nil {
		return err
	}
	return up.Wait()
}

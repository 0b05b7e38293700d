// Command tableflip is the benchmark's tableflip peer: the shared handler
// served the way tableflip's README and its net/http example recommend,
// without improvements. SIGHUP calls upg.Upgrade(); after upg.Ready() the
// process waits on <-upg.Exit(), then calls Shutdown with no deadline of its
// own, guarded by a 30 s timer that exits the process.
//
// With -tls-cert and -tls-key it serves TLS (ALPN h2 and http/1.1) through
// tls.NewListener over the tableflip listener, as net/http's Serve wants
// for HTTP/2. GET /events is the shared server-sent events handler; its
// streams end when Shutdown starts (a RegisterOnShutdown hook, net/http's
// own way to tell long-lived handlers), not at the 30 s exit.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cloudflare/tableflip"

	"github.com/batonhq/baton/bench/peers/internal/hello"
)

func main() {
	listenAddr := flag.String("listen", "localhost:8080", "`Address` to listen on")
	pidFile := flag.String("pid-file", "", "`Path` to pid file")
	certFile := flag.String("tls-cert", "", "serve TLS with this PEM certificate `file` (with -tls-key)")
	keyFile := flag.String("tls-key", "", "PEM private key `file` of -tls-cert")
	flag.Parse()
	log.SetPrefix(fmt.Sprintf("%d ", os.Getpid()))

	upg, err := tableflip.New(tableflip.Options{PIDFile: *pidFile})
	if err != nil {
		log.Fatalln("tableflip:", err)
	}
	defer upg.Stop()

	// Do an upgrade on SIGHUP.
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGHUP)
		for range sig {
			if err := upg.Upgrade(); err != nil {
				log.Println("Upgrade failed:", err)
			}
		}
	}()

	// Listen must be called before Ready.
	ln, err := upg.Listen("tcp", *listenAddr)
	if err != nil {
		log.Fatalln("Can't listen:", err)
	}
	if *certFile != "" || *keyFile != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			log.Fatalln("TLS:", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}})
	}

	draining := make(chan struct{})
	root := hello.Handler(0)
	events := hello.Events(func(*http.Request) <-chan struct{} { return draining })
	server := http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/events" {
			events.ServeHTTP(w, r)
			return
		}
		root.ServeHTTP(w, r)
	})}
	server.RegisterOnShutdown(func() { close(draining) })
	go func() {
		err := server.Serve(ln)
		if !errors.Is(err, http.ErrServerClosed) {
			log.Println("HTTP server:", err)
		}
	}()

	if err := upg.Ready(); err != nil {
		log.Fatalln("Ready:", err)
	}
	<-upg.Exit()

	// A deadline on exiting after upg.Exit() is closed: no new upgrade can
	// be performed while the parent has not exited.
	time.AfterFunc(30*time.Second, func() {
		log.Println("Graceful shutdown timed out")
		os.Exit(1)
	})

	// Wait for connections to drain.
	_ = server.Shutdown(context.Background())
}

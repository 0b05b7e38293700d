// Command gosystemd is the benchmark's peer for `baton run`: a plain
// net/http server written against go-systemd, as one writes it for a
// socket-activated Type=notify unit. It serves the listener named "http"
// from LISTEN_FDS (or the only one; it binds -listen when started by hand),
// says READY=1 once serving, and on SIGTERM or SIGINT calls Shutdown with a
// deadline.
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
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/batonhq/baton/bench/peers/internal/hello"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gosystemd:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:8080", "`address` to listen on when not socket-activated")
	drain := flag.Duration("drain", 10*time.Second, "Shutdown deadline on SIGTERM")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	ln, err := listener(*listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: hello.Handler(0), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		return fmt.Errorf("notify ready: %w", err)
	}

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), *drain)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func listener(addr string) (net.Listener, error) {
	named, err := activation.ListenersWithNames()
	if err != nil {
		return nil, fmt.Errorf("activation: %w", err)
	}
	if lns := named["http"]; len(lns) > 0 {
		return lns[0], nil
	}
	for _, lns := range named {
		if len(named) == 1 && len(lns) == 1 {
			return lns[0], nil
		}
	}
	if len(named) > 0 {
		return nil, errors.New("activation: no listener named http")
	}
	return net.Listen("tcp", addr)
}

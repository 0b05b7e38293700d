// Command gosystemd is the benchmark's peer for `baton run`: a plain
// net/http server written against go-systemd, as one writes it for a
// socket-activated Type=notify unit. It serves the listener named "http"
// from LISTEN_FDS (or the only one; it binds -listen when started by hand),
// says READY=1 once serving, and on SIGTERM or SIGINT calls Shutdown with a
// deadline.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
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

	ln, err := listener(*listen)
	if err != nil {
		return err
	}
	return hello.Serve(ln, *drain, func() error {
		if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
			return fmt.Errorf("notify ready: %w", err)
		}
		return nil
	})
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

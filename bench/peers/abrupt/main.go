// Command abrupt is the benchmark's server that exits at SIGTERM at once,
// dropping whatever it has in flight (as node_exporter and many small
// servers do): its socket named "http" from LISTEN_FDS (go-systemd's
// activation), READY=1 once serving, and os.Exit on SIGTERM.
package main

import (
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/batonhq/baton/bench/peers/internal/hello"
)

func main() {
	named, err := activation.ListenersWithNames()
	if err != nil || len(named["http"]) != 1 {
		fmt.Fprintln(os.Stderr, "abrupt: want one socket named http from LISTEN_FDS:", err)
		os.Exit(1)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	srv := &http.Server{Handler: hello.Handler(0)}
	go func() { _ = srv.Serve(named["http"][0]) }()
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		fmt.Fprintln(os.Stderr, "abrupt: notify:", err)
	}
	<-term
	os.Exit(0)
}

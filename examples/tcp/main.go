// Command tcp is an echo server upgraded in place with handoff: SIGHUP (or
// `baton reload --pid PID`) starts a new process on the same listening
// socket; this one stops accepting and exits when its last connection ends
// (or after the drain deadline).
//
// Socket name "echo" when socket-activated; -listen otherwise.
package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"

	"github.com/batonhq/baton/handoff"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:7007", "address to listen on when not socket-activated")
	pidfile := flag.String("pidfile", "", "write the serving process's pid to this file")
	flag.Parse()
	if err := run(*listen, *pidfile); err != nil {
		fmt.Fprintln(os.Stderr, "tcp:", err)
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
	ln, err := up.Listen("echo", "tcp", listen)
	if err != nil {
		return err
	}
	srv := handoff.TCP(ln, func(c net.Conn) { _, _ = io.Copy(c, c) })
	srv.Logger = log // out of fds: it logs and retries
	up.Serve(srv)
	if err := up.Ready(); err != nil {
		return err
	}
	return up.Wait()
}

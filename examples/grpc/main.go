// Command grpc is a gRPC server upgraded in place with handoff: SIGHUP (or
// `baton reload --pid PID`) starts a new process on the same listening
// socket, and this one ends with GracefulStop (Stop at the drain deadline).
// It serves the standard health service, so any gRPC health client can
// talk to it:
//
//	grpc-health-probe -addr 127.0.0.1:9090
//
// Socket name "grpc" when socket-activated; -listen otherwise.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/batonhq/baton/handoff"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9090", "address to listen on when not socket-activated")
	pidfile := flag.String("pidfile", "", "write the serving process's pid to this file")
	flag.Parse()
	if err := run(*listen, *pidfile); err != nil {
		fmt.Fprintln(os.Stderr, "grpc:", err)
		os.Exit(1)
	}
}

func run(listen, pidfile string) error {
	up, err := handoff.New(handoff.Config{PIDFile: pidfile, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		return err
	}
	defer up.Close()
	ln, err := up.Listen("grpc", "tcp", listen)
	if err != nil {
		return err
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	up.Serve(handoff.ServerFuncs{
		ServeFunc: func() error { return srv.Serve(ln) },
		ShutdownFunc: handoff.Graceful(func() {
			// Tell health-checking clients to go elsewhere, then finish
			// the calls in flight.
			hs.Shutdown()
			srv.GracefulStop()
		}, srv.Stop),
	})
	if err := up.Ready(); err != nil {
		return err
	}
	return up.Wait()
}

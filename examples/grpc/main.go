// Command grpc is a gRPC server upgraded in place with handoff: SIGHUP (or
// `baton reload --pid PID`) starts a new process on the same listening
// socket, and this one ends with GracefulStop (Stop at the drain deadline).
// It serves the standard health service, so any gRPC health client can
// talk to it:
//
//	grpc-health-probe -addr 127.0.0.1:9090
//
// and a server stream, baton.example.Pids/Watch (pids.go), that sends
// "pid P generation G" every 100 ms. A stream never holds a drain: when its
// generation drains, every server stream (Pids.Watch, the health service's
// Watch) ends with status UNAVAILABLE, message "generation G (pid P)
// draining: reopen the stream", and a client that opens it again reaches
// the next generation (drain.go). So GracefulStop returns well within
// -drain-timeout and no stream ends in a transport reset.
//
// -watch-window D keeps the old generation after an upgrade for D, not
// its listener paused (the grpc.Server is not stopped) and holding the main
// PID: a new version that dies within D is rolled back, the old one's
// listener resumed.
//
// Socket name "grpc" when socket-activated; -listen otherwise.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/batonhq/baton/handoff"
)

func main() {
	var cfg config
	flag.StringVar(&cfg.listen, "listen", "127.0.0.1:9090", "address to listen on when not socket-activated")
	flag.StringVar(&cfg.pidfile, "pidfile", "", "write the serving process's pid to this file")
	flag.DurationVar(&cfg.drainTimeout, "drain-timeout", handoff.DefaultDrainTimeout, "bound on a generation's drain, then Stop")
	flag.DurationVar(&cfg.watchWindow, "watch-window", 0, "after an upgrade, keep this generation this long and serve again if the new one dies (0: hand over at once)")
	flag.Parse()
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "grpc:", err)
		os.Exit(1)
	}
}

type config struct {
	listen       string
	pidfile      string
	drainTimeout time.Duration
	watchWindow  time.Duration
}

func run(cfg config) error {
	up, err := handoff.New(handoff.Config{
		PIDFile:      cfg.pidfile,
		DrainTimeout: cfg.drainTimeout,
		WatchWindow:  cfg.watchWindow,
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		return err
	}
	defer up.Close()
	ln, err := up.Listen("grpc", "tcp", cfg.listen)
	if err != nil {
		return err
	}
	self := fmt.Sprintf("generation %d (pid %d)", up.Generation(), os.Getpid())
	msg := fmt.Sprintf("pid %d generation %d", os.Getpid(), up.Generation())
	// drain ends when the Upgrader starts draining this server. A watch
	// window only pauses the listener (a rollback resumes it): the
	// server is built once.
	drain, endStreams := context.WithCancel(context.Background())
	srv := grpc.NewServer(grpc.StreamInterceptor(endAtDrain(drain, self)))
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	srv.RegisterService(&pidsDesc, &pids{msg: msg})
	up.Serve(handoff.ServerFuncs{
		ServeFunc: func() error { return srv.Serve(ln) },
		ShutdownFunc: handoff.Graceful(func() {
			// End the streams, tell health-checking clients to go
			// elsewhere, then finish the calls in flight.
			endStreams()
			hs.Shutdown()
			srv.GracefulStop()
		}, srv.Stop),
	})
	if err := up.Ready(); err != nil {
		return err
	}
	return up.Wait()
}

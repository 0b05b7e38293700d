//go:build linux

package supervisor_test

import (
	"context"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/batonhq/baton/internal/supervisor"
)

// A server binary run with one socket; SIGHUP upgrades it, SIGTERM stops
// it. This is `baton run --listen http=tcp://127.0.0.1:8080 -- /usr/bin/myserver`.
func Example() {
	ln, err := net.Listen("tcp", "127.0.0.1:8080")
	if err != nil {
		log.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		log.Fatal(err)
	}
	s, err := supervisor.New(supervisor.Config{
		Args:    []string{"/usr/bin/myserver"},
		Sockets: []supervisor.Socket{{Name: "http", File: f}},
	})
	if err != nil {
		log.Fatal(err)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM)
	go func() {
		for sig := range sigs {
			if sig == syscall.SIGHUP {
				s.Trigger()
			} else {
				_ = s.Stop(sig)
			}
		}
	}()
	if err := s.Run(context.Background()); err != nil {
		log.Fatal(err)
	}
}

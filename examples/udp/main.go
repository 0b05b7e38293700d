// Command udp is a UDP echo server upgraded in place with handoff. Both
// generations share one socket: the old one stops reading at the hand-over
// and answers what it has already read; the new one reads from then on, so
// no datagram waiting in the socket is lost.
//
// Socket name "echo" when socket-activated; -listen otherwise.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/batonhq/baton/handoff"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:7007", "address to listen on when not socket-activated")
	pidfile := flag.String("pidfile", "", "write the serving process's pid to this file")
	flag.Parse()
	if err := run(*listen, *pidfile); err != nil {
		fmt.Fprintln(os.Stderr, "udp:", err)
		os.Exit(1)
	}
}

func run(listen, pidfile string) error {
	up, err := handoff.New(handoff.Config{PIDFile: pidfile, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		return err
	}
	defer up.Close()
	pc, err := up.ListenPacket("echo", "udp", listen)
	if err != nil {
		return err
	}
	var stopping atomic.Bool
	done := make(chan struct{})
	up.Serve(handoff.ServerFuncs{
		ServeFunc: func() error {
			defer close(done)
			buf := make([]byte, 64<<10)
			for {
				n, addr, err := pc.ReadFrom(buf)
				if err != nil {
					if stopping.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
						return nil
					}
					return err
				}
				_, _ = pc.WriteTo(buf[:n], addr)
			}
		},
		ShutdownFunc: func(ctx context.Context) error {
			// Stop reading (the successor reads now), finish the echo in
			// hand, then close this process's copy of the socket.
			stopping.Store(true)
			_ = pc.SetReadDeadline(time.Now())
			select {
			case <-done:
			case <-ctx.Done():
			}
			_ = pc.Close()
			return ctx.Err()
		},
	})
	if err := up.Ready(); err != nil {
		return err
	}
	return up.Wait()
}

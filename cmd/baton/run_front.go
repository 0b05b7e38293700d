package main

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/batonhq/baton/internal/front"
	"github.com/batonhq/baton/internal/supervisor"
)

// startFront makes the HTTP front of --front on socks and serves them;
// stop closes it (after the supervisor's Run) and waits for its servers.
func (c *runCommand) startFront(socks []supervisor.Socket, log *slog.Logger) (*front.Front, func(), error) {
	fs := make([]front.Socket, len(socks))
	for i, sk := range socks {
		fs[i] = front.Socket{Name: sk.Name, File: sk.File}
	}
	fr, err := front.New(front.Config{Sockets: fs, Wait: c.frontWait, Logger: log})
	if err != nil {
		var se *front.SocketError
		if errors.As(err, &se) && errors.Is(err, front.ErrNotStream) {
			for _, sk := range socks {
				if sk.Name == se.Name {
					return nil, nil, fmt.Errorf("--front: socket %s (%s): %w: the front serves HTTP on tcp:// and unix: sockets; give the datagram socket to a baton run without --front", se.Name, sockAddr(sk.File), err)
				}
			}
		}
		return nil, nil, fmt.Errorf("--front: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- fr.Serve() }()
	return fr, func() {
		if err := fr.Close(); err != nil {
			log.Warn("front: close", "err", err)
		}
		if err := <-done; err != nil {
			log.Warn("front", "err", err)
		}
		st := fr.Stats()
		log.Info("front: stopped", "requests", st.Requests, "unavailable", st.Unavailable, "bad-gateway", st.BadGateway)
	}, nil
}

// frontHint says what to do about a CMD that does not serve the front's
// private sockets.
func frontHint(socks []supervisor.Socket) string {
	name := "its socket"
	if len(socks) > 0 {
		name = "socket " + socks[0].Name
	}
	return fmt.Sprintf("with --front, CMD gets %s as a private unix socket at fd 3 (LISTEN_FDS) and must accept HTTP on it, not bind an address of its own; use baton run without --front for a program that cannot", name)
}

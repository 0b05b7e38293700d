package hello

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"
)

// Serve serves Handler(0) on ln until SIGTERM or SIGINT, then calls
// Shutdown with a deadline of drain: the stop of a plain net/http server.
// ready, when not nil, runs once the server is serving (a peer's
// READY=1); its error ends the run.
func Serve(ln net.Listener, drain time.Duration, ready func() error) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	srv := &http.Server{Handler: Handler(0), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if ready != nil {
		if err := ready(); err != nil {
			_ = srv.Close()
			if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
				return errors.Join(err, serr)
			}
			return err
		}
	}

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

package supervisor

import (
	"context"
	"os"
	"time"
)

// Front is an HTTP front (internal/front) that holds the client
// connections and forwards requests to the CMDs: each CMD gets the
// front's private sockets of its generation in place of Config.Sockets,
// only serving CMDs get new requests, and a CMD's requests in flight end
// before its SIGTERM. The supervisor calls it thus:
//
//	Sockets  before a CMD starts (generation n; its fds 3, 4, ...)
//	Check    once the CMD is ready: does it accept on them? an error fails the start
//	Route    the CMD enters the serving state (a cut-over, a rollback, a restart)
//	Unroute  the CMD leaves it (standby, draining, exited)
//	Quiesce  before the CMD's SIGTERM, bounded by Drain
//	Release  the CMD was reaped, or did not start
//	Shutdown before a stop's signal to the serving CMDs, bounded by Drain
//
// Route, Unroute and Release are called with the supervisor's lock held:
// they must not block nor call the supervisor.
type Front interface {
	Sockets(n int) ([]*os.File, error)
	Check(ctx context.Context, n int) error
	Route(n int)
	Unroute(n int)
	Quiesce(ctx context.Context, n int)
	Release(n int)
	Shutdown(ctx context.Context) error
}

// frontSockets returns the sockets of generation n: Config.Sockets, or
// with a front its private ones under the same names.
func (s *Supervisor) frontSockets(n int) ([]Socket, error) {
	if s.cfg.Front == nil {
		return s.cfg.Sockets, nil
	}
	files, err := s.cfg.Front.Sockets(n)
	if err != nil {
		return nil, err
	}
	socks := make([]Socket, len(files))
	for i, f := range files {
		socks[i] = Socket{Name: s.cfg.Sockets[i].Name, File: f}
	}
	return socks, nil
}

// frontCheck asks the front whether c accepts on its private sockets,
// giving up when c exits, ReadyTimeout passes, ctx is done or a stop
// begins.
func (s *Supervisor) frontCheck(ctx context.Context, c *child) error {
	if s.cfg.Front == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ReadyTimeout)
	defer cancel()
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		select {
		case <-c.done:
		case <-s.stopping:
		case <-ctx.Done():
		}
		cancel()
	}()
	err := s.cfg.Front.Check(ctx, c.n)
	cancel()
	<-ended
	return err
}

// quiesce lets the front end c's requests before its SIGTERM, for up to
// Drain.
func (s *Supervisor) quiesce(c *child) {
	if s.cfg.Front == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Drain)
	defer cancel()
	s.cfg.Front.Quiesce(ctx, c.n)
}

// frontShutdown drains the front's client connections before a stop's
// signal reaches the serving CMDs, for up to Drain.
func (s *Supervisor) frontShutdown() {
	if s.cfg.Front == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Drain)
	defer cancel()
	begun := time.Now()
	if err := s.cfg.Front.Shutdown(ctx); err != nil {
		s.log.Warn("front: shutdown", "err", err, "after", time.Since(begun))
	}
}

package handoff

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"

	"github.com/batonhq/baton/internal/accept"
)

// Server is what an Upgrader drains when its generation ends.
type Server interface {
	// Serve serves until Shutdown; it returns nil when stopped by
	// Shutdown, an error otherwise.
	Serve() error
	// Shutdown stops accepting, lets in-flight work finish, and returns
	// as soon as it has. When ctx ends first it force-closes what is left
	// and returns ctx.Err().
	Shutdown(ctx context.Context) error
}

// ServerFuncs adapts a pair of functions to Server.
type ServerFuncs struct {
	ServeFunc    func() error
	ShutdownFunc func(ctx context.Context) error
}

// Serve calls ServeFunc.
func (s ServerFuncs) Serve() error { return s.ServeFunc() }

// Shutdown calls ShutdownFunc.
func (s ServerFuncs) Shutdown(ctx context.Context) error { return s.ShutdownFunc(ctx) }

// Graceful returns a Shutdown function for servers shaped like gRPC's:
// graceful blocks until in-flight work is done (GracefulStop), force ends
// it at once (Stop). When ctx ends first, force is called and ctx.Err()
// returned.
func Graceful(graceful, force func()) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		done := make(chan struct{})
		go func() { graceful(); close(done) }()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			force()
			<-done
			return ctx.Err()
		}
	}
}

// TCPServer serves a stream listener with one goroutine per connection and
// drains by closing the listener and waiting for the handlers. An Accept
// that fails for want of fds, buffers or memory (EMFILE, ENFILE, ENOBUFS,
// ENOMEM) does not end it: as net/http does, it waits 5 ms, doubling up to
// 1 s while the errors go on, and accepts again; connections wait in the
// backlog meanwhile.
type TCPServer struct {
	// Logger, when set, gets the first failed Accept of each burst.
	Logger *slog.Logger

	ln     net.Listener
	handle func(net.Conn)

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	draining bool
	wg       sync.WaitGroup
	served   chan struct{}
}

// TCP returns a Server that calls handle for each connection accepted on
// ln, in its own goroutine, and closes the connection when handle returns.
func TCP(ln net.Listener, handle func(net.Conn)) *TCPServer {
	return &TCPServer{ln: ln, handle: handle, conns: map[net.Conn]struct{}{}, served: make(chan struct{})}
}

func (s *TCPServer) acceptsOn() net.Listener { return s.ln }

// Serve accepts until Shutdown.
func (s *TCPServer) Serve() error {
	defer close(s.served)
	var b accept.Backoff
	for {
		c, err := s.ln.Accept()
		if err != nil {
			s.mu.Lock()
			draining := s.draining
			s.mu.Unlock()
			if draining && errors.Is(err, net.ErrClosed) {
				return nil
			}
			if retry, first := b.Wait(err); retry {
				if first && s.Logger != nil {
					s.Logger.Warn("accept failed, retrying with back-off", "err", err)
				}
				continue
			}
			return err
		}
		b.Reset()
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				_ = c.Close()
			}()
			s.handle(c)
		}()
	}
}

// Shutdown closes the listener and waits for every handler to return; when
// ctx ends first it closes the remaining connections.
func (s *TCPServer) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	err := s.ln.Close()
	<-s.served
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return err
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

package handoff

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
)

// Renewer is a Server that can serve again after its Shutdown. The rollback
// of a watch window (Config.WatchWindow) calls Renew on each server that
// drained and serves what it returns, on the same sockets. HTTPServer and
// TCPServer are Renewers; Rebuild makes one of any Server built on a
// listener.
type Renewer interface {
	Server
	// Renew returns a new Server with the same configuration, serving
	// the socket this one served. It is called after Shutdown.
	Renew() (Server, error)
}

// errNotRenewable is wrapped by the upgrade error of a generation with a
// watch window and a server that could not serve again after a rollback.
var errNotRenewable = errors.New("cannot serve again after a rollback (not a handoff.Renewer; wrap it with handoff.Rebuild)")

// renewKey marks the context of a drain whose servers may be renewed:
// their Shutdown keeps a copy of the listening socket.
type renewKey struct{}

func withRenew(ctx context.Context) context.Context { return context.WithValue(ctx, renewKey{}, true) }

func renewWanted(ctx context.Context) bool { v, _ := ctx.Value(renewKey{}).(bool); return v }

// spare keeps a copy of a listening socket across the listener's Close,
// for Renew.
type spare struct {
	mu  sync.Mutex
	f   *os.File
	err error
}

// keep copies ln's socket when ctx is a drain that may be renewed; call it
// before ln.Close.
func (sp *spare) keep(ctx context.Context, ln net.Listener) {
	if !renewWanted(ctx) {
		return
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.f != nil || sp.err != nil {
		return
	}
	fl, ok := ln.(interface{ File() (*os.File, error) })
	if !ok {
		sp.err = fmt.Errorf("listener %T has no socket to keep", ln)
		return
	}
	sp.f, sp.err = fl.File()
}

// listener returns a new listener on the kept socket, once.
func (sp *spare) listener() (net.Listener, error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.err != nil {
		return nil, sp.err
	}
	if sp.f == nil {
		return nil, errors.New("no socket kept: Renew before a drain that keeps one")
	}
	ln, err := net.FileListener(sp.f)
	_ = sp.f.Close()
	sp.f = nil
	if ul, ok := ln.(*net.UnixListener); ok {
		// The path belongs to the service, not to this listener.
		ul.SetUnlinkOnClose(false)
	}
	return ln, err
}

// Renew returns a new HTTPServer serving the same http.Server's
// configuration on the same socket, with the same graces.
func (s *HTTPServer) Renew() (Server, error) {
	ln, err := s.spare.listener()
	if err != nil {
		return nil, fmt.Errorf("handoff: renew http server: %w", err)
	}
	n := HTTP(s.srv, ln)
	n.IdleGrace, n.NewConnGrace, n.StreamGrace, n.SpreadWindow = s.IdleGrace, s.NewConnGrace, s.StreamGrace, s.SpreadWindow
	return n, nil
}

// Renew returns a new TCPServer with the same handler on the same socket.
func (s *TCPServer) Renew() (Server, error) {
	ln, err := s.spare.listener()
	if err != nil {
		return nil, fmt.Errorf("handoff: renew tcp server: %w", err)
	}
	n := TCP(ln, s.handle)
	n.Logger = s.Logger
	return n, nil
}

// Rebuild returns a Renewer for a Server that cannot serve twice (a gRPC
// server, which closes its listener when stopped): build makes the server
// for a listener; Rebuild calls it with ln now, and with a new listener on
// the same socket at each rollback.
//
//	up.Serve(handoff.Rebuild(ln, func(ln net.Listener) handoff.Server {
//		g := grpc.NewServer()
//		pb.RegisterGreeterServer(g, impl)
//		return handoff.ServerFuncs{
//			ServeFunc:    func() error { return g.Serve(ln) },
//			ShutdownFunc: handoff.Graceful(g.GracefulStop, g.Stop),
//		}
//	}))
func Rebuild(ln net.Listener, build func(net.Listener) Server) Renewer {
	return &rebuilt{ln: ln, build: build, s: build(ln)}
}

type rebuilt struct {
	ln    net.Listener
	build func(net.Listener) Server
	s     Server
	spare spare
}

func (r *rebuilt) Serve() error { return r.s.Serve() }

func (r *rebuilt) Shutdown(ctx context.Context) error {
	r.spare.keep(ctx, r.ln)
	return r.s.Shutdown(ctx)
}

func (r *rebuilt) Renew() (Server, error) {
	ln, err := r.spare.listener()
	if err != nil {
		return nil, fmt.Errorf("handoff: rebuild: %w", err)
	}
	return Rebuild(ln, r.build), nil
}

// Connections passes the built server's count on, when it has one.
func (r *rebuilt) Connections() int {
	if c, ok := r.s.(connCounter); ok {
		return c.Connections()
	}
	return -1
}

package handoff

import (
	"context"
	"errors"
	"net"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"
)

// listener is what Listen returns: the net package's listener with an
// Accept that an Upgrader can pause and resume, for every kind of server
// that accepts on it (net/http, gRPC, TCPServer, a loop of the program's
// own). While paused, Accept waits: connections stay in the socket's
// backlog, where the successor, which shares the socket, takes them. A
// connection Accept had already taken when the pause came is returned and
// served.
//
// The pause wakes an Accept parked in the kernel by moving the socket's
// deadline to the past; the Accept that returns with that timeout goes
// back to waiting instead of returning it. A deadline the program sets
// itself (SetDeadline) works as on the net package's listener while not
// paused.
type listener struct {
	inner deadlineListener

	// op serializes pause and resume, so that the socket's deadline
	// follows the state in the order they were asked.
	op sync.Mutex

	mu      sync.Mutex
	paused  bool
	resumed chan struct{} // closed by resume; a new one at each pause
	epoch   uint64        // counts pauses: an Accept that saw one began retries
	parked  int           // Accepts waiting for a resume
	closed  chan struct{}
	once    sync.Once
}

// deadlineListener is a stream listener with SetDeadline (*net.TCPListener,
// *net.UnixListener).
type deadlineListener interface {
	net.Listener
	SetDeadline(t time.Time) error
}

// pausable wraps ln for the Upgrader; ln without SetDeadline is returned
// as it is, and the Upgrader cannot pause it.
func pausable(ln net.Listener) net.Listener {
	dl, ok := ln.(deadlineListener)
	if !ok {
		return ln
	}
	return &listener{inner: dl, resumed: make(chan struct{}), closed: make(chan struct{})}
}

// Accept waits while the listener is paused, then accepts.
func (l *listener) Accept() (net.Conn, error) {
	for {
		l.mu.Lock()
		for l.paused {
			ch := l.resumed
			l.parked++
			l.mu.Unlock()
			select {
			case <-ch:
			case <-l.closed:
				l.mu.Lock()
				l.parked--
				l.mu.Unlock()
				return nil, &net.OpError{Op: "accept", Net: l.Addr().Network(), Addr: l.Addr(), Err: net.ErrClosed}
			}
			l.mu.Lock()
			l.parked--
		}
		epoch := l.epoch
		l.mu.Unlock()
		c, err := l.inner.Accept()
		if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			l.mu.Lock()
			kicked := l.epoch != epoch
			l.mu.Unlock()
			if kicked {
				continue
			}
		}
		return c, err
	}
}

// pause stops Accept from taking connections until resume.
func (l *listener) pause() {
	l.op.Lock()
	defer l.op.Unlock()
	l.mu.Lock()
	if l.paused {
		l.mu.Unlock()
		return
	}
	l.paused = true
	l.epoch++
	l.resumed = make(chan struct{})
	l.mu.Unlock()
	_ = l.inner.SetDeadline(time.Unix(1, 0))
}

// resume lets Accept take connections again.
func (l *listener) resume() {
	l.op.Lock()
	defer l.op.Unlock()
	l.mu.Lock()
	paused := l.paused
	l.mu.Unlock()
	if !paused {
		return
	}
	// The deadline first: an Accept let go must not meet the pause's.
	_ = l.inner.SetDeadline(time.Time{})
	l.mu.Lock()
	l.paused = false
	close(l.resumed)
	l.mu.Unlock()
}

// Close closes the socket (a unix socket's path is never removed) and
// ends an Accept waiting in a pause.
func (l *listener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.inner.Close()
}

// Addr returns the socket's address.
func (l *listener) Addr() net.Addr { return l.inner.Addr() }

// SetDeadline sets the socket's accept deadline, as the net package's
// listener does.
func (l *listener) SetDeadline(t time.Time) error { return l.inner.SetDeadline(t) }

// File returns a copy of the socket, as the net package's listener does.
func (l *listener) File() (*os.File, error) {
	f, ok := l.inner.(interface{ File() (*os.File, error) })
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return f.File()
}

// SyscallConn gives access to the socket, as the net package's listener
// does.
func (l *listener) SyscallConn() (syscall.RawConn, error) {
	sc, ok := l.inner.(syscall.Conn)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return sc.SyscallConn()
}

// Unwrap returns the net package's listener under l.
func (l *listener) Unwrap() net.Listener { return l.inner }

// pauser is a server that eases its clients off while its generation is
// paused, reversibly (HTTPServer: responses say "Connection: close").
type pauser interface {
	pauseServing(ctx context.Context) // ctx carries the Upgrader's drainConfig
	resumeServing()
}

// pauseLocked pauses every listener Listen returned, and the servers that
// can ease their clients off: this generation stops accepting,
// reversibly. Called with u.mu held.
func (u *Upgrader) pauseLocked() {
	for _, l := range u.listeners {
		l.pause()
	}
	// The lame duck also without a window: the drain follows within
	// milliseconds, but keep-alive clients start moving to the successor
	// from the pause on.
	ctx := u.drainContext(context.Background())
	for _, r := range u.running {
		if p, ok := r.s.(pauser); ok {
			p.pauseServing(ctx)
		}
	}
}

// resumeLocked undoes pauseLocked. Called with u.mu held.
func (u *Upgrader) resumeLocked() {
	for _, l := range u.listeners {
		l.resume()
	}
	for _, r := range u.running {
		if p, ok := r.s.(pauser); ok {
			p.resumeServing()
		}
	}
}

// acceptor is a server that accepts on one listener and says which:
// when that is a listener Listen returned, the server can start before its
// generation accepts, held on the paused listener.
type acceptor interface{ acceptsOn() net.Listener }

// holdLocked, in a successor about to say READY, pauses every listener
// Listen returned and starts the registered servers that accept on one of
// them (in order, up to the first that does not): at SERVE, accepting is
// a resume (releaseLocked), with no server's start-up on the hand-over's
// path. Called with u.mu held.
func (u *Upgrader) holdLocked() {
	if u.held {
		return
	}
	u.held = true
	for _, l := range u.listeners {
		l.pause()
	}
	u.startServersWhileLocked(func(s Server) bool {
		a, ok := s.(acceptor)
		if !ok {
			return false
		}
		l, ok := a.acceptsOn().(*listener)
		return ok && slices.Contains(u.listeners, l)
	})
}

// releaseLocked undoes holdLocked. Called with u.mu held.
func (u *Upgrader) releaseLocked() {
	if !u.held {
		return
	}
	u.held = false
	for _, l := range u.listeners {
		l.resume()
	}
}

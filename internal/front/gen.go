package front

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// gen is one generation (one CMD) behind the front: its private sockets,
// one per public socket, and the requests in flight on them.
type gen struct {
	n     int
	backs []*backend

	inflight  atomic.Int64
	routedNow atomic.Bool   // gets new requests
	quiet     chan struct{} // a request ended while unrouted (buffered 1)

	connMu sync.Mutex
	conns  map[*trackedConn]struct{} // open connections to the CMD
}

// done ends a request counted by acquire.
func (g *gen) done() {
	if g.inflight.Add(-1) == 0 && !g.routedNow.Load() {
		select {
		case g.quiet <- struct{}{}:
		default:
		}
	}
}

// closeConns closes every connection to the CMD, upgraded ones included,
// and returns how many there were.
func (g *gen) closeConns() int {
	g.connMu.Lock()
	cs := make([]*trackedConn, 0, len(g.conns))
	for c := range g.conns {
		cs = append(cs, c)
	}
	g.connMu.Unlock()
	for _, c := range cs {
		_ = c.Close()
	}
	return len(cs)
}

// trackedConn is a connection to a CMD, known to its gen until closed.
type trackedConn struct {
	net.Conn
	g    *gen
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.g.connMu.Lock()
		delete(c.g.conns, c)
		c.g.connMu.Unlock()
	})
	return c.Conn.Close()
}

func privatePath(dir string, n, i int) string {
	return filepath.Join(dir, strconv.Itoa(n)+"-"+strconv.Itoa(i)+".sock")
}

// Sockets makes generation n's private listening sockets, one per public
// socket with the same name, for its CMD's LISTEN_FDS. The files stay the
// front's: the caller passes them to CMD and Release closes them.
func (f *Front) Sockets(n int) ([]*os.File, error) {
	g := &gen{n: n, quiet: make(chan struct{}, 1), conns: make(map[*trackedConn]struct{})}
	files := make([]*os.File, 0, len(f.cfg.Sockets))
	for i, sk := range f.cfg.Sockets {
		path := privatePath(f.dir, n, i)
		file, err := listenUnix(path)
		if err != nil {
			for _, b := range g.backs {
				b.close()
			}
			return nil, &SocketError{Name: sk.Name, Err: fmt.Errorf("private socket: %w", err)}
		}
		b := newBackend(f, g, sk.Name, path, file)
		g.backs = append(g.backs, b)
		files = append(files, file)
	}
	f.mu.Lock()
	f.gens[n] = g
	f.mu.Unlock()
	return files, nil
}

// Check makes sure generation n's CMD accepts connections on its private
// sockets: it connects to each and waits, until ctx is done, for the
// connection to leave the accept queue. The probe connection is closed
// without a request, as a load balancer's TCP check does.
func (f *Front) Check(ctx context.Context, n int) error {
	g := f.gen(n)
	if g == nil {
		return fmt.Errorf("front: generation %d: %w", n, ErrUnknownGeneration)
	}
	for _, b := range g.backs {
		if err := b.check(ctx); err != nil {
			return &SocketError{Name: b.name, Err: err}
		}
	}
	return nil
}

// Route sends new requests to generation n too (it serves).
func (f *Front) Route(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := f.gens[n]
	if g == nil || g.routedNow.Load() {
		return
	}
	g.routedNow.Store(true)
	gs := append(slices.Clone(*f.routed.Load()), g)
	f.routed.Store(&gs)
	if len(gs) == 1 {
		close(f.ready)
	}
	f.log.Debug("front: routing", "generation", n, "routed", len(gs))
}

// Unroute sends no new request to generation n; those in flight go on.
func (f *Front) Unroute(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if g := f.gens[n]; g != nil {
		f.unrouteLocked(g)
	}
}

func (f *Front) unrouteLocked(g *gen) {
	if !g.routedNow.Load() {
		return
	}
	g.routedNow.Store(false)
	gs := slices.DeleteFunc(slices.Clone(*f.routed.Load()), func(x *gen) bool { return x == g })
	f.routed.Store(&gs)
	if len(gs) == 0 {
		f.ready = make(chan struct{})
	}
	if g.inflight.Load() == 0 {
		select {
		case g.quiet <- struct{}{}:
		default:
		}
	}
	f.log.Debug("front: not routing", "generation", g.n, "routed", len(gs))
}

// Quiesce prepares generation n's CMD for its SIGTERM: it is unrouted,
// the requests in flight on it (upgraded connections and streams
// included) finish, or are cut when ctx is done, and then the front
// closes its connections to the CMD, all idle now, so that the CMD's
// drain closes none that a request is about to use.
func (f *Front) Quiesce(ctx context.Context, n int) {
	g := f.gen(n)
	if g == nil {
		return
	}
	f.Unroute(n)
	begun := time.Now()
	for g.inflight.Load() > 0 {
		select {
		case <-g.quiet:
		case <-ctx.Done():
			cut := g.closeConns()
			f.log.Warn("front: drain deadline: connections to the old generation cut", "generation", n, "in-flight", g.inflight.Load(), "connections", cut)
			return
		}
	}
	closed := g.closeConns()
	f.log.Debug("front: generation quiet", "generation", n, "after", time.Since(begun), "closed", closed)
}

// Release closes generation n's private sockets and connections, once its
// CMD has exited.
func (f *Front) Release(n int) {
	f.mu.Lock()
	g := f.gens[n]
	if g != nil {
		f.unrouteLocked(g)
		delete(f.gens, n)
	}
	f.mu.Unlock()
	if g == nil {
		return
	}
	g.closeConns()
	for _, b := range g.backs {
		b.close()
	}
}

func (f *Front) gen(n int) *gen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gens[n]
}

package drain

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
)

// A hijacked connection (WebSocket, a CONNECT tunnel) leaves net/http's
// bookkeeping. A Server keeps it in its own while the handler that
// hijacked it runs and while it is registered with Hijacked: the drain
// waits for it, tells it to go away when the drain starts, and closes it at
// the deadline.
type hijack struct {
	conn       net.Conn
	running    bool     // the handler that hijacked it has not returned
	registered int      // Hijacked calls whose done was not called yet
	goingAway  []func() // from Hijacked, run once when the drain starts
	cancel     func()   // cancels its connection's context; nil for none
}

type hijacks struct {
	mu       sync.Mutex
	m        map[net.Conn]*hijack
	starting int // Hijack calls in progress: the connection is not in m yet
}

// Hijacked registers a connection that a handler took over from net/http,
// such as a WebSocket, with the Server that served the request; ctx is
// that request's context. When the drain starts, goingAway runs once in a
// goroutine of its own: it should tell the peer (a WebSocket close frame
// with status 1001, Going Away) and make the connection end. The drain,
// and so the process, waits until done is called (call it once the
// connection is closed; later calls do nothing), or until its deadline,
// when the connection is closed. Registered after the drain began,
// goingAway runs at once.
//
// A hijacking handler is waited for anyway while it runs; Hijacked is what
// tells the connection to go away, and what keeps it tracked when the
// handler returns and other goroutines go on with the connection. For a
// ctx that does not come from a Server's request, Hijacked does
// nothing and done is a no-op.
func Hijacked(ctx context.Context, goingAway func()) (done func()) {
	ci := connOf(ctx)
	if ci == nil {
		return func() {}
	}
	return ci.s.hijacks.register(ci.s, ci.conn, ci.cancel, goingAway)
}

func (h *hijacks) register(s *Server, c net.Conn, cancel, goingAway func()) func() {
	h.mu.Lock()
	e := h.entry(c)
	if e.cancel == nil {
		e.cancel = cancel
	}
	e.registered++
	if goingAway != nil {
		e.goingAway = append(e.goingAway, goingAway)
	}
	draining := s.draining.Load()
	h.mu.Unlock()
	if draining && goingAway != nil {
		s.goAway(goingAway)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			e.registered--
			h.dropLocked(e)
			h.mu.Unlock()
			s.poke()
		})
	}
}

func (h *hijacks) entry(c net.Conn) *hijack {
	if h.m == nil {
		h.m = map[net.Conn]*hijack{}
	}
	e := h.m[c]
	if e == nil {
		e = &hijack{conn: c}
		h.m[c] = e
	}
	return e
}

// dropLocked forgets e once it has ended: its handler returned and no
// Hijacked registration is left. Its connection's context is cancelled
// then: net/http, which cancels the contexts of the connections it
// serves when they close, never sees a hijacked one close, and a context
// left uncancelled stays among its parent's children (a cancellable
// BaseContext) for the life of the server.
func (h *hijacks) dropLocked(e *hijack) {
	if !e.running && e.registered <= 0 && h.m[e.conn] == e {
		delete(h.m, e.conn)
		if e.cancel != nil {
			e.cancel()
		}
	}
}

// begin is called before a handler's Hijack: from then until end or
// started the drain counts the connection.
func (h *hijacks) begin() {
	h.mu.Lock()
	h.starting++
	h.mu.Unlock()
}

// started records the hijacked connection c (nil when Hijack failed) and
// the function that cancels its context.
func (h *hijacks) started(c net.Conn, cancel func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.starting--
	if c != nil {
		e := h.entry(c)
		e.running = true
		if e.cancel == nil {
			e.cancel = cancel
		}
	}
}

// handlerDone is called when the handler that hijacked c returned.
func (h *hijacks) handlerDone(c net.Conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e := h.m[c]; e != nil {
		e.running = false
		h.dropLocked(e)
	}
}

func (h *hijacks) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.m) + h.starting
}

// startDrain sets draining and returns every registered goingAway
// function, under the lock that register holds, so each runs once.
func (h *hijacks) startDrain(draining *atomic.Bool) []func() {
	h.mu.Lock()
	defer h.mu.Unlock()
	draining.Store(true)
	var fs []func()
	for _, e := range h.m {
		fs = append(fs, e.goingAway...)
	}
	return fs
}

// closeAll closes every tracked connection (the drain's deadline).
func (h *hijacks) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.m {
		_ = e.conn.Close()
	}
}

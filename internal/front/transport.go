package front

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"time"
)

// transport is the RoundTripper of one private socket: HTTP/1.1 over unix
// connections of its own pool, each request written and its response read
// on the goroutine that serves the client's request.
//
// net/http's Transport gives every connection a reading and a writing
// goroutine and hands each request and response between three goroutines;
// on a small machine those hand-offs, each a thread woken, cost the front
// more than the HTTP does. Here a request costs no goroutine and no
// hand-off, unless its body is large or of unknown length: such a body is
// written by a goroutine of its own while the response is read, as a
// server may answer before it has read the body. Upgrade requests (WebSocket) go to upgrade, a
// net/http Transport, which knows how to hand the connection over.
//
// A connection goes back to the pool when its response body has been read
// to the end, its request written whole, its request not cancelled and
// neither side said "Connection: close"; otherwise it is closed. A pooled
// connection the CMD has closed is found, before use, by a peek that does
// not wait, before a request with a body; a request without one that
// meets a close on a reused connection before a byte of its response is
// sent again, once, on a new connection (as net/http's Transport does),
// which costs less than a peek before each.
type transport struct {
	dial    func(ctx context.Context) (net.Conn, error)
	upgrade http.RoundTripper

	mu     sync.Mutex
	idle   []*pconn // most recently used last
	closed bool
}

// pconn is one connection to the CMD with its buffers.
type pconn struct {
	t  *transport
	c  net.Conn
	n  int64 // bytes read from c
	br *bufio.Reader
	bw *bufio.Writer
}

// Read counts what the response reader takes from the connection.
func (pc *pconn) Read(p []byte) (int, error) {
	n, err := pc.c.Read(p)
	pc.n += int64(n)
	return n, err
}

func (pc *pconn) close() { _ = pc.c.Close() }

// inlineBody is the largest body written on the request's own goroutine,
// before its response is read: it fits in a unix socket's send buffer.
const inlineBody = 64 << 10

// longAgo is a deadline in the past: it ends the reads and writes that
// wait on a connection.
var longAgo = time.Unix(1, 0)

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("Upgrade") != "" {
		// ReverseProxy keeps Upgrade only on an upgrade request.
		return t.upgrade.RoundTrip(req)
	}
	for retried := false; ; retried = true {
		pc, reused, err := t.get(req.Context(), !noBody(req))
		if err != nil {
			return nil, err
		}
		resp, received, err := pc.roundTrip(req)
		if err == nil {
			return resp, nil
		}
		pc.close()
		if reused && !retried && !received && noBody(req) && req.Context().Err() == nil {
			continue
		}
		return nil, err
	}
}

func noBody(req *http.Request) bool { return req.Body == nil || req.Body == http.NoBody }

// get returns an idle connection, and true, or a new one. With check, the
// idle connection is one the CMD has not closed: a request with a body
// cannot be sent again.
func (t *transport) get(ctx context.Context, check bool) (*pconn, bool, error) {
	t.mu.Lock()
	for len(t.idle) > 0 {
		pc := t.idle[len(t.idle)-1]
		t.idle[len(t.idle)-1] = nil
		t.idle = t.idle[:len(t.idle)-1]
		t.mu.Unlock()
		if pc.br.Buffered() == 0 && (!check || usable(pc.c)) {
			return pc, true, nil
		}
		pc.close()
		t.mu.Lock()
	}
	t.mu.Unlock()
	c, err := t.dial(ctx)
	if err != nil {
		return nil, false, err
	}
	pc := &pconn{t: t, c: c}
	pc.br = bufio.NewReaderSize(pc, 4<<10)
	pc.bw = bufio.NewWriterSize(c, 4<<10)
	return pc, false, nil
}

// put keeps pc for the next request, or closes it when the pool is full
// or closed.
func (t *transport) put(pc *pconn) {
	t.mu.Lock()
	if t.closed || len(t.idle) >= maxIdlePerCMD {
		t.mu.Unlock()
		pc.close()
		return
	}
	t.idle = append(t.idle, pc)
	t.mu.Unlock()
}

// close closes the idle connections and keeps no more.
func (t *transport) close() {
	t.mu.Lock()
	idle := t.idle
	t.idle, t.closed = nil, true
	t.mu.Unlock()
	for _, pc := range idle {
		pc.close()
	}
}

// roundTrip sends req on pc and reads the response's head. received
// reports whether any of the response had arrived when it failed.
func (pc *pconn) roundTrip(req *http.Request) (_ *http.Response, received bool, _ error) {
	stop := context.AfterFunc(req.Context(), func() { _ = pc.c.SetDeadline(longAgo) })
	ex := &exchange{pc: pc, stop: stop}
	var werr error
	if noBody(req) || (req.ContentLength > 0 && req.ContentLength <= inlineBody) {
		// Written here, the body into the socket's buffer: a CMD that
		// answers without reading it has its answer read after.
		werr = writeRequest(pc.bw, req)
		ex.written, ex.failed = true, werr != nil
		if werr != nil && pc.br.Buffered() == 0 && usable(pc.c) {
			// Nothing to read: no early answer, no close by the CMD
			// (the client's body failed, say).
			ex.end(false)
			return nil, false, werr
		}
	} else {
		go func() { ex.wrote(writeRequest(pc.bw, req)) }()
	}
	n0 := pc.n
	resp, err := readResponse(pc.br, req)
	if err == nil && resp.StatusCode == http.StatusSwitchingProtocols {
		_ = resp.Body.Close()
		err = errors.New("101 Switching Protocols to a request without Upgrade")
	}
	if err != nil {
		ex.end(false)
		if ctxErr := req.Context().Err(); ctxErr != nil {
			err = ctxErr
		} else if werr != nil {
			err = werr
		}
		return nil, pc.n != n0, err
	}
	ex.reuse = !resp.Close && !req.Close && !ex.failed
	resp.Body = &body{rc: resp.Body, ex: ex}
	return resp, true, nil
}

func writeRequest(bw *bufio.Writer, req *http.Request) error {
	if err := req.Write(bw); err != nil {
		return err
	}
	return bw.Flush()
}

// readResponse reads the final response's head, passing the 1xx ones to
// the request's trace (ReverseProxy forwards them to the client).
func readResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	trace := httptrace.ContextClientTrace(req.Context())
	for {
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return nil, err
		}
		code := resp.StatusCode
		if code < 100 || code > 199 || code == http.StatusSwitchingProtocols {
			return resp, nil
		}
		if trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(code, textproto.MIMEHeader(resp.Header)); err != nil {
				return nil, err
			}
		}
	}
}

// exchange is one request and its response on a connection. The
// connection goes back to the pool when both the request has been written
// whole and the response read to its end, decided by whichever of the two
// comes last; it is closed as soon as either fails.
type exchange struct {
	stop  func() bool // false: the request was cancelled
	reuse bool        // neither side said "Connection: close"

	mu      sync.Mutex
	pc      *pconn // nil once decided
	written bool   // the request is on the wire, or failed
	failed  bool   // written in part: the connection is not reused
	read    bool   // the response's body reached its end
}

// wrote is the end of the request's writer.
func (ex *exchange) wrote(err error) {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	ex.written = true
	if err != nil {
		ex.closeLocked()
	} else if ex.read {
		ex.decideLocked()
	}
}

// end is the end of the response: at its body's end (ok) or before.
func (ex *exchange) end(ok bool) {
	cancelled := !ex.stop()
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if !ok || cancelled || !ex.reuse {
		ex.closeLocked()
		return
	}
	ex.read = true
	if ex.written {
		ex.decideLocked()
	}
}

func (ex *exchange) decideLocked() {
	if pc := ex.pc; pc != nil {
		ex.pc = nil
		pc.t.put(pc)
	}
}

func (ex *exchange) closeLocked() {
	if pc := ex.pc; pc != nil {
		ex.pc = nil
		pc.close()
	}
}

// body is a response's body; its end ends the exchange.
type body struct {
	rc   io.ReadCloser
	ex   *exchange
	once sync.Once
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.once.Do(func() { b.ex.end(true) })
	}
	return n, err
}

// Close before the end closes the connection: what is left of the body
// is not read (an endless stream would never end).
func (b *body) Close() error {
	b.once.Do(func() { b.ex.end(b.rc == http.NoBody) })
	return nil
}

package drain

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"sync"
)

// lameDuckWriter decides "Connection: close" when the response header is
// written, not when the handler starts: a request that was in flight when
// the lame duck or the drain began is answered with it too, so its client
// opens a new connection (elsewhere) for the next request instead of
// sending it to the draining server. With keep-alives disabled on the
// user's server (SetKeepAlivesEnabled), every response says it. It keeps the interfaces of the net/http
// writer that handlers look for (Flusher, Hijacker, io.ReaderFrom,
// io.StringWriter) and Unwrap for http.ResponseController.
type lameDuckWriter struct {
	http.ResponseWriter
	s        *Server
	ctx      context.Context // the request's: its connection's turn in the spread
	wrote    bool
	hijacked net.Conn // set by Hijack
}

var lameDuckPool = sync.Pool{New: func() any { return new(lameDuckWriter) }}

// header finalizes the response header: the last moment "Connection:
// close" can be added (once the connection's turn in the drain's spread
// has come).
func (w *lameDuckWriter) header() {
	if w.wrote {
		return
	}
	w.wrote = true
	switch {
	case w.s.keepAlive.off():
		w.ResponseWriter.Header().Set("Connection", "close")
	case w.s.closing.Load():
		if ci := connOf(w.ctx); ci == nil || ci.released() {
			w.ResponseWriter.Header().Set("Connection", "close")
		}
	}
}

func (w *lameDuckWriter) WriteHeader(code int) {
	switch {
	case code == http.StatusSwitchingProtocols:
		// The connection leaves HTTP (a WebSocket): its "Connection:
		// Upgrade" stays, or the client fails the handshake; the drain
		// follows it as a hijacked connection.
		w.wrote = true
	case code >= 200:
		w.header()
	}
	// Other 1xx informational responses leave the final header open.
	w.ResponseWriter.WriteHeader(code)
}

func (w *lameDuckWriter) Write(b []byte) (int, error) {
	w.header()
	return w.ResponseWriter.Write(b)
}

func (w *lameDuckWriter) WriteString(s string) (int, error) {
	w.header()
	return io.WriteString(w.ResponseWriter, s)
}

func (w *lameDuckWriter) ReadFrom(r io.Reader) (int64, error) {
	w.header()
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(r) // keeps sendfile for files
	}
	return io.Copy(w.ResponseWriter, r)
}

func (w *lameDuckWriter) Flush() {
	w.header()
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *lameDuckWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.wrote = true // the connection leaves HTTP: no header to decide
	w.s.hijacks.begin()
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		c = nil
	}
	var cancel context.CancelFunc
	if ci := connOf(w.ctx); ci != nil {
		cancel = ci.cancel
	}
	w.s.hijacks.started(c, cancel)
	w.hijacked = c
	return c, rw, err
}

// Unwrap gives http.ResponseController the net/http writer.
func (w *lameDuckWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

package front

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"sync"
	"time"
)

// backend is one private socket of a generation and the proxy to it.
type backend struct {
	f     *Front
	g     *gen
	name  string
	path  string
	file  *os.File        // the listening socket, the CMD's copy at its fd
	up    *http.Transport // Upgrade requests
	tr    *transport
	proxy *httputil.ReverseProxy
}

// maxIdlePerCMD bounds the idle connections kept to one private socket:
// above the client connections a busy front has in flight at once, so that
// a request seldom dials (net/http's default transport keeps 2).
const maxIdlePerCMD = 1024

func newBackend(f *Front, g *gen, name, path string, file *os.File) *backend {
	b := &backend{f: f, g: g, name: name, path: path, file: file}
	b.up = &http.Transport{ // upgraded connections are never pooled
		DialContext: b.dial,
		// The client's Accept-Encoding goes through as sent; the
		// transport must not ask for gzip and unpack it itself.
		DisableCompression: true,
		// Proxy is nil: no HTTP_PROXY from the environment.
	}
	b.tr = &transport{
		dial:    func(ctx context.Context) (net.Conn, error) { return b.dial(ctx, "unix", b.path) },
		upgrade: b.up,
	}
	b.proxy = &httputil.ReverseProxy{
		Rewrite:      b.rewrite,
		Transport:    b.tr,
		BufferPool:   bufferPool{},
		ErrorHandler: b.failed,
		ErrorLog:     slog.NewLogLogger(f.log.Handler(), slog.LevelDebug),
		// FlushInterval 0: ReverseProxy flushes text/event-stream and
		// responses of unknown length as they are written.
	}
	return b
}

func (b *backend) rewrite(pr *httputil.ProxyRequest) {
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = "baton-front" // the transport's pool key; Host stays the client's
	pr.SetXForwarded()
}

func (b *backend) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", b.path)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, g: b.g}
	b.g.connMu.Lock()
	b.g.conns[tc] = struct{}{}
	b.g.connMu.Unlock()
	return tc, nil
}

// failed answers a request the generation failed: 502, counted and
// logged. A request whose client left is only counted.
func (b *backend) failed(w http.ResponseWriter, r *http.Request, err error) {
	n := b.f.badGateway.Add(1)
	if r.Context().Err() == nil {
		b.f.log.Warn("front: request failed: 502", "socket", b.name, "generation", b.g.n, "method", r.Method, "path", r.URL.Path, "err", err, "count", n)
	}
	w.WriteHeader(http.StatusBadGateway)
}

// check connects to the private socket and waits until CMD has accepted
// the connection (it left the listening socket's queue), or ctx is done.
func (b *backend) check(ctx context.Context) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", b.path)
	if err != nil {
		return err
	}
	defer c.Close()
	t := time.NewTicker(DefaultCheckInterval)
	defer t.Stop()
	for {
		pending, err := hasPending(b.file)
		if err != nil {
			return err
		}
		if !pending {
			return nil
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return errors.Join(ErrNotAccepted, ctx.Err())
		}
	}
}

func (b *backend) close() {
	b.tr.close()
	b.up.CloseIdleConnections()
	_ = b.file.Close()
	_ = os.Remove(b.path)
}

// bufferPool lends ReverseProxy its copy buffers (it allocates 32 KiB per
// request without one).
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte { return *buffers.Get().(*[]byte) }

func (bufferPool) Put(b []byte) { buffers.Put(&b) }

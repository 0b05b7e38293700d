//go:build linux

package front

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/rawhttp"
	"github.com/batonhq/baton/internal/testproc"
)

// fakeCMD is a generation's server, in process: what a CMD does with its
// private socket. stop ends it as a CMD that exits at SIGTERM does: every
// connection closed at once, upgraded ones included.
type fakeCMD struct {
	n   int
	srv *http.Server
	ln  net.Listener

	mu       sync.Mutex
	hijacked map[net.Conn]struct{}
	served   chan error
}

func startCMD(t *testing.T, f *Front, n int) *fakeCMD {
	t.Helper()
	files, err := f.Sockets(n)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.FileListener(files[0]) // the CMD's copy of fd 3
	if err != nil {
		t.Fatal(err)
	}
	c := &fakeCMD{n: n, ln: ln, hijacked: map[net.Conn]struct{}{}, served: make(chan error, 1)}
	c.srv = &http.Server{Handler: c}
	go func() { c.served <- c.srv.Serve(ln) }()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := f.Check(ctx, n); err != nil {
		t.Fatalf("check generation %d: %v", n, err)
	}
	return c
}

func (c *fakeCMD) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	gen := strconv.Itoa(c.n)
	w.Header().Set("X-Pid", gen) // rawhttp.Load counts answers by X-Pid
	switch r.URL.Path {
	case "/ws":
		rc := http.NewResponseController(w)
		conn, brw, err := rc.Hijack()
		if err != nil {
			return
		}
		c.mu.Lock()
		c.hijacked[conn] = struct{}{}
		c.mu.Unlock()
		defer func() {
			c.mu.Lock()
			delete(c.hijacked, conn)
			c.mu.Unlock()
			_ = conn.Close()
		}()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Pid: " + gen + "\r\n\r\n")
		_ = brw.Flush()
		for { // echo lines, prefixed with the generation
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			_, _ = brw.WriteString(gen + " " + line)
			_ = brw.Flush()
		}
	case "/sse":
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for i := range 5 {
			fmt.Fprintf(w, "data: %s %d\n\n", gen, i)
			_ = rc.Flush()
			time.Sleep(30 * time.Millisecond)
		}
	default:
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		fmt.Fprintf(w, "%s %d\n", gen, len(body))
	}
}

// stop ends the fake CMD as a process that exits at SIGTERM.
func (c *fakeCMD) stop() {
	_ = c.srv.Close()
	c.mu.Lock()
	for conn := range c.hijacked {
		_ = conn.Close()
	}
	c.mu.Unlock()
	if err := <-c.served; !errors.Is(err, http.ErrServerClosed) {
		panic(fmt.Sprintf("generation %d: serve: %v", c.n, err))
	}
}

// newFront serves a front on a fresh loopback port.
func newFront(t *testing.T, cfg Config) (*Front, string) {
	t.Helper()
	file, addr := testproc.ListenerFile(t)
	cfg.Sockets = []Socket{{Name: "http", File: file}}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- f.Serve() }()
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Error(err)
		}
		if err := <-served; err != nil {
			t.Error(err)
		}
		_ = file.Close()
		if _, err := os.Stat(f.Dir()); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("private directory %s left: %v", f.Dir(), err)
		}
	})
	return f, addr
}

// upgrade replaces generation old by generation n as the supervisor does:
// the new one is ready and routed, then the old one is quiesced, then it
// gets its SIGTERM (here: exits at once) and is released.
func upgrade(t *testing.T, f *Front, old *fakeCMD, n int, drain time.Duration) *fakeCMD {
	t.Helper()
	c := startCMD(t, f, n)
	f.Route(n)
	ctx, cancel := context.WithTimeout(context.Background(), drain)
	f.Quiesce(ctx, old.n)
	cancel()
	old.stop()
	f.Release(old.n)
	return c
}

// poster sends POSTs on one keep-alive connection, never retrying.
type poster struct {
	conn net.Conn
	br   *bufio.Reader
}

func dialPoster(t *testing.T, addr string) *poster {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return &poster{conn: conn, br: bufio.NewReader(conn)}
}

func (p *poster) post(body string) (string, error) {
	_ = p.conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := "POST /post HTTP/1.1\r\nHost: front\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	if _, err := io.WriteString(p.conn, req); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(p.br, nil)
	if err != nil {
		return "", err
	}
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK || resp.Close {
		return "", fmt.Errorf("status %s, close %v", resp.Status, resp.Close)
	}
	return string(b), nil
}

// TestUpgradesLoseNothing: keep-alive GETs and POSTs run through upgrades
// whose old generation closes every connection at once at its SIGTERM:
// no request fails, and no client connection is closed (one dial each).
func TestUpgradesLoseNothing(t *testing.T) {
	testproc.CheckGoroutines(t)
	testproc.CheckFDs(t)
	f, addr := newFront(t, Config{})
	cmd := startCMD(t, f, 1)
	f.Route(1)

	const getters = 6
	l := rawhttp.StartLoad(addr, getters, func(int) bool { return true })
	var posted, postFailed atomic.Int64
	var wg sync.WaitGroup
	quit := make(chan struct{})
	var postErr atomic.Value
	for range 4 {
		p := dialPoster(t, addr)
		wg.Go(func() {
			defer p.conn.Close()
			body := strings.Repeat("x", 5000)
			for {
				select {
				case <-quit:
					return
				default:
				}
				got, err := p.post(body)
				if err != nil || !strings.HasSuffix(got, " 5000\n") {
					postFailed.Add(1)
					postErr.Store(fmt.Sprintf("%q %v", got, err))
					return // the connection is in an unknown state
				}
				posted.Add(1)
			}
		})
	}
	rounds := testproc.Rounds(20, 50)
	for i := range rounds {
		l.Await(30)
		cmd = upgrade(t, f, cmd, i+2, 5*time.Second)
	}
	l.Await(30)
	close(quit)
	wg.Wait()
	l.Stop()
	cmd.stop()
	f.Release(cmd.n)
	st := f.Stats()
	t.Logf("%d upgrades: %d GETs ok, %d failed; %d POSTs ok, %d failed; front %+v", rounds, l.OK.Load(), l.Failed.Load(), posted.Load(), postFailed.Load(), st)
	if l.Failed.Load() != 0 || postFailed.Load() != 0 || st.BadGateway != 0 || st.Unavailable != 0 {
		t.Errorf("failed: GETs %d %v, POSTs %d %v", l.Failed.Load(), l.Errors(), postFailed.Load(), postErr.Load())
	}
}

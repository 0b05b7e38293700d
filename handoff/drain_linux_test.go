package handoff

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/control"
	"github.com/batonhq/baton/internal/testproc"
	"golang.org/x/sys/unix"
)

// shutdownAsync starts s's drain and returns its result channel.
func shutdownAsync(s *HTTPServer, d time.Duration) chan error {
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}()
	return shut
}

func expectClose(t *testing.T, h http.Header, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("request during the drain: %v", err)
	}
	if h.Get("Connection") != "close" {
		t.Errorf("Connection = %q, want close", h.Get("Connection"))
	}
}

// TestHTTPDrainLateFirstRequest: a connection accepted before the drain
// that sends its first request long after IdleGrace gets its answer.
// (Before, the drain closed connections in StateNew like idle ones.)
func TestHTTPDrainLateFirstRequest(t *testing.T) {
	checkLeaks(t)
	s, addr, served := drainServer(t, http.NotFoundHandler())
	s.NewConnGrace = 5 * time.Second
	late := mustDial(t, "tcp", addr)
	waitConns(t, s, 1)
	shut := shutdownAsync(s, 10*time.Second)
	time.Sleep(4 * s.IdleGrace) // a client far away, or slow to start
	if err := late.send("/"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(late.br, nil)
	if err != nil {
		t.Fatalf("late first request: %v", err)
	}
	_ = resp.Body.Close()
	if !resp.Close {
		t.Error("late first request answered without Connection: close")
	}
	drained(t, shut, served)
}

// TestHTTPDrainNewConnBound: a connection that never sends a request is
// closed once NewConnGrace old, and the drain ends then.
func TestHTTPDrainNewConnBound(t *testing.T) {
	checkLeaks(t)
	s, addr, served := drainServer(t, http.NotFoundHandler())
	s.NewConnGrace = 100 * time.Millisecond
	silent := mustDial(t, "tcp", addr)
	waitConns(t, s, 1)
	if err := <-shutdownAsync(s, 10*time.Second); err != nil {
		t.Errorf("Shutdown = %v, want the silent connection closed before the deadline", err)
	}
	if _, err := silent.br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("silent connection: read %v, want EOF", err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve = %v", err)
	}
}

// TestHTTPDrainPartialRequest: request bytes that net/http has read into
// its buffer while the connection still counts as idle keep it open: the
// rest of the request arrives after IdleGrace and is answered.
func TestHTTPDrainPartialRequest(t *testing.T) {
	checkLeaks(t)
	s, addr, served := drainServer(t, http.NotFoundHandler())
	c := mustDial(t, "tcp", addr)
	if _, err := c.rawDo("/"); err != nil {
		t.Fatal(err)
	}
	shut := shutdownAsync(s, 10*time.Second)
	time.Sleep(s.IdleGrace / 2)
	// "GE": fewer bytes than net/http peeks for (4), so they sit in its
	// buffer and the connection stays idle; the kernel has none left.
	if _, err := io.WriteString(c, "GE"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * s.IdleGrace)
	if _, err := io.WriteString(c, "T / HTTP/1.1\r\nHost: t\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("request completed after IdleGrace: %v", err)
	}
	_ = resp.Body.Close()
	drained(t, shut, served)
}

// TestHTTPTLS: with srv.TLSConfig set, HTTP serves TLS with HTTP/2 and
// HTTP/1.1 by ALPN; a TLS handshake that starts late in the drain counts
// as a new connection and is answered.
func TestHTTPTLS(t *testing.T) {
	checkLeaks(t)
	cert, pool := testCert(t)
	s, addr, served := serveHTTP(t, &http.Server{
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, r.Proto)
		}),
	})
	client := func(protos ...string) *tls.Conn {
		raw, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", NextProtos: protos})
	}
	for _, tc := range []struct{ alpn, want string }{{"h2", "h2"}, {"http/1.1", "http/1.1"}} {
		c := client(tc.alpn)
		if err := c.Handshake(); err != nil {
			t.Fatal(err)
		}
		if got := c.ConnectionState().NegotiatedProtocol; got != tc.want {
			t.Errorf("ALPN %s: negotiated %q", tc.alpn, got)
		}
		_ = c.Close()
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if string(body) != "HTTP/2.0" {
		t.Errorf("served %q, want HTTP/2.0", body)
	}

	late := client("http/1.1") // connected now, handshake after the drain began
	defer late.Close()
	waitConns(t, s, 2) // late and the Transport's HTTP/2 connection
	shut := shutdownAsync(s, 10*time.Second)
	time.Sleep(4 * s.IdleGrace)
	if _, err := io.WriteString(late, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"); err != nil {
		t.Fatalf("late TLS handshake: %v", err)
	}
	resp, err = http.ReadResponse(bufio.NewReader(late), nil)
	if err != nil {
		t.Fatalf("late TLS request: %v", err)
	}
	_ = resp.Body.Close()
	if !resp.Close {
		t.Error("late TLS request answered without Connection: close")
	}
	// The HTTP/2 connection got GOAWAY and closed by itself.
	drained(t, shut, served)
}

// TestHTTPTLSNoCertificate: a TLSConfig without a certificate is an error
// from Serve, not a plaintext server.
func TestHTTPTLSNoCertificate(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := HTTP(&http.Server{TLSConfig: &tls.Config{}}, ln)
	if err := s.Serve(); !errors.Is(err, errNoCertificate) {
		t.Errorf("Serve = %v, want %v", err, errNoCertificate)
	}
}

// TestHTTPDrainSignals: handlers see the drain start (Draining, the
// user's RegisterOnShutdown hooks) while requests are still in flight.
func TestHTTPDrainSignals(t *testing.T) {
	checkLeaks(t)
	in := make(chan struct{}, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in <- struct{}{}
		<-Draining(r.Context())
		_, _ = io.WriteString(w, "drained")
	})}
	hook := make(chan struct{})
	srv.RegisterOnShutdown(func() { close(hook) })
	s, addr, served := serveHTTP(t, srv)
	c := mustDial(t, "tcp", addr)
	if err := c.send("/"); err != nil {
		t.Fatal(err)
	}
	<-in
	if Draining(context.Background()) != nil {
		t.Error("Draining of a foreign context is not nil")
	}
	shut := shutdownAsync(s, 10*time.Second)
	select {
	case <-hook:
	case <-time.After(wait):
		t.Fatal("RegisterOnShutdown hook did not run when the drain started")
	}
	h, err := c.receive()
	expectClose(t, h, err)
	drained(t, shut, served)
}

// TestHTTPStreamGrace: a handler that streams until r.Context() is done
// is cancelled at StreamGrace and its response ends cleanly (the chunked
// end of body), long before the deadline.
func TestHTTPStreamGrace(t *testing.T) {
	checkLeaks(t)
	in := make(chan struct{}, 1)
	s, addr, served := drainServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		in <- struct{}{}
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
				_, _ = io.WriteString(w, "data: x\n\n")
				_ = rc.Flush()
			}
		}
	}))
	s.StreamGrace = 100 * time.Millisecond
	c := mustDial(t, "tcp", addr)
	if err := c.send("/events"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	<-in
	shut := shutdownAsync(s, 30*time.Second)
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Errorf("stream ended abruptly: %v", err)
	}
	_ = resp.Body.Close()
	if err := <-shut; err != nil {
		t.Errorf("Shutdown = %v, want the stream ended at StreamGrace", err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve = %v", err)
	}
}

// TestHTTPHijacked: a hijacked connection registered with Hijacked is
// told to go away when the drain starts, and the drain waits for it.
func TestHTTPHijacked(t *testing.T) {
	checkLeaks(t)
	released := make(chan struct{})
	s, addr, served := drainServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		away := make(chan struct{})
		done := Hijacked(r.Context(), func() {
			_, _ = io.WriteString(c, "going away\n")
			close(away)
		})
		// As a WebSocket server does: the session lives in goroutines
		// of its own, the handler returns.
		go func() {
			defer done()
			defer c.Close()
			<-away
			<-released
		}()
	}))
	c := mustDial(t, "tcp", addr)
	if err := c.send("/ws"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	shut := shutdownAsync(s, 10*time.Second)
	line, err := c.br.ReadString('\n')
	if err != nil || line != "going away\n" {
		t.Fatalf("hijacked connection read %q, %v; want going away", line, err)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown = %v before the hijacked connection ended", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(released)
	drained(t, shut, served)
}

// TestHTTPUpgradeDuringDrain: an upgrade request on a connection accepted
// before the drain, sent after it began, is answered 101 with its
// "Connection: Upgrade" (not "close", which fails a WebSocket handshake),
// and the upgraded connection is told to go away at once.
func TestHTTPUpgradeDuringDrain(t *testing.T) {
	checkLeaks(t)
	s, addr, served := drainServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Upgrade", "echo")
		w.Header().Set("Connection", "Upgrade")
		w.WriteHeader(http.StatusSwitchingProtocols)
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		away := make(chan struct{})
		done := Hijacked(r.Context(), func() {
			_, _ = io.WriteString(c, "going away\n")
			close(away)
		})
		defer done()
		<-away
	}))
	c := mustDial(t, "tcp", addr)
	waitConns(t, s, 1)
	shut := shutdownAsync(s, 10*time.Second)
	<-s.Draining()
	if err := c.send("/ws"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Close || resp.Header.Get("Connection") != "Upgrade" {
		t.Errorf("upgrade during the drain: %s, Connection %q (close %v); want 101, Connection Upgrade",
			resp.Status, resp.Header.Get("Connection"), resp.Close)
	}
	if line, err := c.br.ReadString('\n'); err != nil || line != "going away\n" {
		t.Errorf("upgraded connection read %q, %v; want going away", line, err)
	}
	drained(t, shut, served)
}

// TestHTTPHijackedDeadline: at the deadline a hijacked connection that
// did not end is closed.
func TestHTTPHijackedDeadline(t *testing.T) {
	checkLeaks(t)
	s, addr, served := drainServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(io.Discard, c) // deaf: only the close ends it
	}))
	c := mustDial(t, "tcp", addr)
	if err := c.send("/ws"); err != nil {
		t.Fatal(err)
	}
	waitConns(t, s, 0) // hijacked: out of net/http's hands
	if err := <-shutdownAsync(s, 100*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want DeadlineExceeded", err)
	}
	if _, err := c.br.ReadByte(); err == nil {
		t.Error("hijacked connection still open after the deadline")
	}
	if err := <-served; err != nil {
		t.Errorf("Serve = %v", err)
	}
}

// TestHTTPServerCopy: HTTP serves a copy of every exported field of
// http.Server; a field added by a new Go release fails here until HTTP
// copies it.
func TestHTTPServerCopy(t *testing.T) {
	copied := map[string]bool{
		"Addr": true, "Handler": true, "DisableGeneralOptionsHandler": true, "TLSConfig": true,
		"ReadTimeout": true, "ReadHeaderTimeout": true, "WriteTimeout": true, "IdleTimeout": true,
		"MaxHeaderBytes": true, "TLSNextProto": true, "ConnState": true, "ErrorLog": true,
		"BaseContext": true, "ConnContext": true, "HTTP2": true, "Protocols": true,
	}
	for f := range reflect.TypeFor[http.Server]().Fields() {
		if f.IsExported() && !copied[f.Name] {
			t.Errorf("http.Server.%s is not copied by HTTP", f.Name)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv := &http.Server{Addr: "x", ReadTimeout: 1, ReadHeaderTimeout: 2, WriteTimeout: 3, IdleTimeout: 4, MaxHeaderBytes: 5}
	s := HTTP(srv, ln)
	if s.srv.Addr != "x" || s.srv.ReadTimeout != 1 || s.srv.ReadHeaderTimeout != 2 || s.srv.WriteTimeout != 3 || s.srv.IdleTimeout != 4 || s.srv.MaxHeaderBytes != 5 {
		t.Errorf("copy differs: %+v", s.srv)
	}
}

// TestStreamGraceConfig: a StreamGrace not shorter than DrainTimeout is
// refused by New, naming both.
func TestStreamGraceConfig(t *testing.T) {
	_, err := New(Config{StreamGrace: 3 * time.Second, DrainTimeout: 2 * time.Second, NoSignals: true, NoControl: true})
	if err == nil || !strings.Contains(err.Error(), "StreamGrace 3s") || !strings.Contains(err.Error(), "DrainTimeout 2s") {
		t.Errorf("New = %v, want an error naming StreamGrace 3s and DrainTimeout 2s", err)
	}
	c := Config{DrainTimeout: 2 * time.Second, StreamGrace: -1, NewConnGrace: -1}
	if c.check() != nil || c.streamGrace() != 1500*time.Millisecond || c.newConnGrace() != DefaultNewConnGrace {
		t.Errorf("negative graces: check %v, stream %v, new %v; want the defaults", c.check(), c.streamGrace(), c.newConnGrace())
	}
}

// drained checks that the drain and Serve both ended without an error.
func drained(t *testing.T, shut, served chan error) {
	t.Helper()
	if err := <-shut; err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve = %v", err)
	}
}

// waitConns waits until s tracks n connections.
func waitConns(t *testing.T, s *HTTPServer, n int64) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for s.open.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections tracked, want %d", s.open.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// testCert returns a self-signed ECDSA P-256 certificate for 127.0.0.1
// and a pool that trusts it.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) { return testproc.Cert(t) }

// TestHTTPH2C: unencrypted HTTP/2 (srv.Protocols) is served and drained:
// a stream open when the drain starts finishes, then the connection,
// told GOAWAY, closes by itself before the deadline.
func TestHTTPH2C(t *testing.T) {
	checkLeaks(t)
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	in, release := make(chan struct{}, 1), make(chan struct{})
	srv := &http.Server{Protocols: &protos, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			in <- struct{}{}
			<-release
		}
		_, _ = io.WriteString(w, r.Proto)
	})}
	s, addr, served := serveHTTP(t, srv)
	var cp http.Protocols
	cp.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &cp}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	url := "http://" + addr
	got := make(chan string, 1)
	go func() {
		resp, err := client.Get(url + "/slow")
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		got <- string(b)
	}()
	<-in
	shut := shutdownAsync(s, 10*time.Second)
	time.Sleep(4 * s.IdleGrace) // past IdleGrace: an HTTP/2 stream is never cut
	close(release)
	if g := <-got; g != "HTTP/2.0" {
		t.Errorf("stream open across the drain: %q, want HTTP/2.0", g)
	}
	drained(t, shut, served)
}

// TestReadyControlTaken: when this process's control socket name is
// taken (here by a server of its own; in the field by a process that bound
// it first), Ready fails instead of serving a process `baton reload`
// cannot reach.
func TestReadyControlTaken(t *testing.T) {
	checkLeaks(t)
	squat, err := control.Listen(func(context.Context) (int, error) { return 4242, nil })
	if err != nil {
		t.Fatal(err)
	}
	defer squat.Close()
	up, err := New(Config{NoSignals: true})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	if err := up.Ready(); err == nil || !strings.Contains(err.Error(), "control socket") {
		t.Errorf("Ready with the control socket name taken = %v, want an error", err)
	}
}

// TestSocketChecksKeepNonblock: looking at an inherited socket's address,
// and duplicating it, leave its O_NONBLOCK alone: the open file
// description is shared with every generation's accept loop.
func TestSocketChecksKeepNonblock(t *testing.T) {
	testproc.CheckFDs(t)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 8); err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "inherited")
	defer f.Close()
	if sameAddr(f, "tcp", "127.0.0.1:1") {
		t.Error("127.0.0.1:1 taken for the socket's address")
	}
	dup, err := dupCloexec(f)
	if err != nil {
		t.Fatal(err)
	}
	_ = unix.Close(dup)
	if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK == 0 {
		t.Errorf("O_NONBLOCK cleared (flags %#x, %v)", fl, err)
	}
}

//go:build linux

package drain

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testproc"
)

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
	s := New(&http.Server{TLSConfig: &tls.Config{}})
	if err := s.Serve(ln); !errors.Is(err, ErrNoCertificate) {
		t.Errorf("Serve = %v, want %v", err, ErrNoCertificate)
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

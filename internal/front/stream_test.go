//go:build linux

package front

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/rawhttp"
	"github.com/batonhq/baton/internal/testproc"
)

// wsDial opens a WebSocket-style upgraded connection through the front:
// a raw handshake, then lines echoed by the generation that took it.
func wsDial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	_, err = io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: front\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Upgrade") != "websocket" {
		t.Fatalf("handshake: %s %v", resp.Status, resp.Header)
	}
	return conn, br
}

func wsEcho(conn net.Conn, br *bufio.Reader, msg string) (string, error) {
	if _, err := io.WriteString(conn, msg+"\n"); err != nil {
		return "", err
	}
	line, err := br.ReadString('\n')
	return strings.TrimSuffix(line, "\n"), err
}

// TestUpgradeKeepsWebSocket: a WebSocket taken by generation 1 stays on
// it through an upgrade while new requests go to generation 2; the old
// generation's SIGTERM waits until the WebSocket ends.
func TestUpgradeKeepsWebSocket(t *testing.T) {
	testproc.CheckGoroutines(t)
	testproc.CheckFDs(t)
	f, addr := newFront(t, Config{})
	one := startCMD(t, f, 1)
	f.Route(1)
	conn, br := wsDial(t, addr)
	if got, err := wsEcho(conn, br, "a"); got != "1 a" || err != nil {
		t.Fatalf("echo before the upgrade: %q %v", got, err)
	}

	two := startCMD(t, f, 2)
	f.Route(2)
	quiet := make(chan struct{})
	go func() {
		defer close(quiet)
		f.Quiesce(context.Background(), 1)
	}()
	c := &rawhttp.Client{Addr: addr, KeepAlive: true}
	defer c.Close()
	for range 20 {
		h, err := c.Get("/")
		if err != nil || h.Get("X-Pid") != "2" {
			t.Fatalf("a new request during the upgrade: generation %q, %v", h.Get("X-Pid"), err)
		}
		if got, err := wsEcho(conn, br, "b"); got != "1 b" || err != nil {
			t.Fatalf("echo after the upgrade: %q %v", got, err)
		}
	}
	select {
	case <-quiet:
		t.Fatal("generation 1 quiesced while its WebSocket is open")
	case <-time.After(50 * time.Millisecond):
	}
	_ = conn.Close()
	select {
	case <-quiet:
	case <-time.After(10 * time.Second):
		t.Fatal("generation 1 not quiesced after its WebSocket ended")
	}
	one.stop()
	f.Release(1)
	two.stop()
	f.Release(2)
}

// TestQuiesceDeadlineCutsWebSocket: a WebSocket still open at the drain
// deadline is closed by the front, and Quiesce returns.
func TestQuiesceDeadlineCutsWebSocket(t *testing.T) {
	testproc.CheckGoroutines(t)
	testproc.CheckFDs(t)
	f, addr := newFront(t, Config{})
	one := startCMD(t, f, 1)
	f.Route(1)
	conn, br := wsDial(t, addr)
	defer conn.Close()
	if got, err := wsEcho(conn, br, "a"); got != "1 a" || err != nil {
		t.Fatalf("echo: %q %v", got, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	f.Quiesce(ctx, 1)
	cancel()
	if _, err := br.ReadString('\n'); !errors.Is(err, io.EOF) {
		t.Fatalf("the WebSocket after the deadline: %v, want EOF", err)
	}
	one.stop()
	f.Release(1)
}

// TestEventStreamFlushedAcrossUpgrade: an event stream is flushed as the
// generation writes it (each event read before the next is written), and
// it ends on its generation after an upgrade routed new requests away.
func TestEventStreamFlushedAcrossUpgrade(t *testing.T) {
	testproc.CheckGoroutines(t)
	testproc.CheckFDs(t)
	f, addr := newFront(t, Config{})
	one := startCMD(t, f, 1)
	f.Route(1)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(conn, "GET /sse HTTP/1.1\r\nHost: front\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	events := bufio.NewReader(resp.Body)
	first, err := events.ReadString('\n')
	if err != nil || first != "data: 1 0\n" {
		t.Fatalf("first event: %q %v", first, err)
	}
	two := startCMD(t, f, 2)
	f.Route(2)
	quiet := make(chan struct{})
	go func() {
		defer close(quiet)
		f.Quiesce(context.Background(), 1)
	}()
	rest, err := io.ReadAll(events)
	if err != nil || strings.Count(string(rest), "data: 1 ") != 4 {
		t.Fatalf("the stream after the upgrade: %q %v", rest, err)
	}
	<-quiet
	// The same connection goes on, to the new generation.
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: front\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err = http.ReadResponse(br, nil)
	if err != nil || resp.Header.Get("X-Pid") != "2" {
		t.Fatalf("next request on the connection: %v %v", resp, err)
	}
	_ = resp.Body.Close()
	one.stop()
	f.Release(1)
	two.stop()
	f.Release(2)
}

// TestNoGenerationIs503: a request that finds no generation ready waits
// for Wait and gets a 503 (counted), and one made while the first
// generation starts waits for it and is served.
func TestNoGenerationIs503(t *testing.T) {
	testproc.CheckGoroutines(t)
	testproc.CheckFDs(t)
	f, addr := newFront(t, Config{Wait: 300 * time.Millisecond})
	c := &rawhttp.Client{Addr: addr, KeepAlive: true}
	_, err := c.Get("/")
	var se *rawhttp.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusServiceUnavailable {
		t.Fatalf("no generation: %v, want 503", err)
	}
	if n := f.Stats().Unavailable; n != 1 {
		t.Errorf("Unavailable %d, want 1", n)
	}

	f2, addr2 := newFront(t, Config{Wait: 10 * time.Second})
	got := make(chan error, 1)
	go func() {
		c := &rawhttp.Client{Addr: addr2}
		_, err := c.Get("/")
		got <- err
	}()
	time.Sleep(100 * time.Millisecond) // the request waits (no timing asserted)
	one := startCMD(t, f2, 1)
	f2.Route(1)
	if err := <-got; err != nil {
		t.Fatalf("a request waiting for the first generation: %v", err)
	}
	one.stop()
	f2.Release(1)
}

// TestCheckRefusesSilentCMD: a CMD that never accepts on its private
// socket fails Check with ErrNotAccepted, naming the socket.
func TestCheckRefusesSilentCMD(t *testing.T) {
	testproc.CheckGoroutines(t)
	testproc.CheckFDs(t)
	f, _ := newFront(t, Config{})
	if _, err := f.Sockets(1); err != nil {
		t.Fatal(err)
	}
	defer f.Release(1)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	err := f.Check(ctx, 1)
	var se *SocketError
	if !errors.Is(err, ErrNotAccepted) || !errors.As(err, &se) || se.Name != "http" {
		t.Fatalf("Check of a CMD that accepts nothing: %v", err)
	}
	t.Log(err)
}

// TestNewRefusesDatagramSocket: a UDP socket is refused by name.
func TestNewRefusesDatagramSocket(t *testing.T) {
	file, _ := testproc.PacketFile(t)
	defer file.Close()
	_, err := New(Config{Sockets: []Socket{{Name: "dns", File: file}}})
	var se *SocketError
	if !errors.Is(err, ErrNotStream) || !errors.As(err, &se) || se.Name != "dns" {
		t.Fatalf("New with a UDP socket: %v", err)
	}
	t.Log(err)
}

// TestShutdownLameDuck: during Shutdown's lame duck a keep-alive client's
// next answer says Connection: close and the front closes the connection
// after it; Shutdown returns when its context ends the lame duck.
func TestShutdownLameDuck(t *testing.T) {
	testproc.CheckGoroutines(t)
	testproc.CheckFDs(t)
	f, addr := newFront(t, Config{LameDuck: time.Hour})
	one := startCMD(t, f, 1)
	f.Route(1)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(conn)
	get := func() *http.Response {
		t.Helper()
		if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: front\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp
	}
	if resp := get(); resp.Close || resp.StatusCode != http.StatusOK {
		t.Fatalf("before Shutdown: %s close=%v", resp.Status, resp.Close)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.Shutdown(ctx) }()
	for !f.draining.Load() {
		time.Sleep(time.Millisecond)
	}
	if resp := get(); !resp.Close || resp.StatusCode != http.StatusOK {
		t.Fatalf("in the lame duck: %s close=%v, want 200 and close", resp.Status, resp.Close)
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the answer with close: %v, want EOF", err)
	}
	cancel() // the lame duck ends with ctx
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	one.stop()
	f.Release(1)
}

// TestH2CPriorKnowledge: an HTTP/2 client without TLS (prior knowledge)
// is served, and its one connection goes on across an upgrade.
func TestH2CPriorKnowledge(t *testing.T) {
	testproc.CheckGoroutines(t)
	testproc.CheckFDs(t)
	f, addr := newFront(t, Config{})
	one := startCMD(t, f, 1)
	f.Route(1)
	// One connection, used directly: no retry on another behind the test.
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	cc, err := tr.NewClientConn(t.Context(), "http", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	get := func(want string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://front/", strings.NewReader("abc"))
		resp, err := cc.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.ProtoMajor != 2 || string(b) != want {
			t.Fatalf("h2c answer %s %q, want HTTP/2 and %q", resp.Proto, b, want)
		}
	}
	get("1 3\n")
	two := upgrade(t, f, one, 2, 5*time.Second)
	get("2 3\n")
	two.stop()
	f.Release(2)
}

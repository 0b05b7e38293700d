//go:build linux

package front

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// serveCMD serves generation n's private socket with h, routed, and
// returns its server; conns counts the connections that carried a
// request (Check's probe carries none).
func serveCMD(t *testing.T, f *Front, n int, h http.Handler, conns *atomic.Int64) *http.Server {
	t.Helper()
	files, err := f.Sockets(n)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.FileListener(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[net.Conn]bool{}
	srv := &http.Server{Handler: h, ConnState: func(c net.Conn, s http.ConnState) {
		if s != http.StateActive || conns == nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !seen[c] {
			seen[c] = true
			conns.Add(1)
		}
	}}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	if err := f.Check(ctx, n); err != nil {
		t.Fatal(err)
	}
	f.Route(n)
	return srv
}

const wait = 10 * time.Second

// client is a poster's connection for any method, failing the test on
// an error; it never retries.
type client struct {
	t *testing.T
	*poster
}

func dialClient(t *testing.T, addr string) *client {
	t.Helper()
	p := dialPoster(t, addr)
	t.Cleanup(func() { _ = p.conn.Close() })
	return &client{t: t, poster: p}
}

// do sends one request and reads the response's head; the body is read
// by the caller.
func (c *client) do(method, path, body string) *http.Response {
	c.t.Helper()
	_ = c.conn.SetDeadline(time.Now().Add(wait))
	req := method + " " + path + " HTTP/1.1\r\nHost: front\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	if _, err := io.WriteString(c.conn, req); err != nil {
		c.t.Fatal(err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp
}

// text sends a request and returns its status and body.
func (c *client) text(method, path, body string) (int, string) {
	c.t.Helper()
	resp := c.do(method, path, body)
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// The front keeps its connections to the CMD: a hundred requests on one
// client connection use one connection to the CMD.
func TestTransportKeepsConnections(t *testing.T) {
	f, addr := newFront(t, Config{})
	var conns atomic.Int64
	serveCMD(t, f, 1, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %d", r.Method, len(b))
	}), &conns)
	c := dialClient(t, addr)
	for i := range 100 {
		method, body, want := "GET", "", "GET 0"
		if i%2 == 1 {
			method, body, want = "POST", strings.Repeat("x", i), "POST "+strconv.Itoa(i)
		}
		if code, got := c.text(method, "/", body); code != http.StatusOK || got != want {
			t.Fatalf("request %d: %d %q, want 200 %q", i, code, got, want)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("the CMD accepted %d connections for 100 requests in a row, want 1", n)
	}
	if s := f.Stats(); s.BadGateway != 0 {
		t.Errorf("%d answered 502", s.BadGateway)
	}
}

// A CMD that closes a connection after a response without saying so (an
// idle timeout; a server that exits) fails no request: a GET that meets
// the close is sent again on a new connection, a POST is never sent on a
// closed one.
func TestTransportCMDClosesIdle(t *testing.T) {
	f, addr := newFront(t, Config{})
	files, err := f.Sockets(1)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.FileListener(files[0])
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	closed := make(chan struct{}, 1)
	go func() { // one response per connection, then a close
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			br := bufio.NewReader(conn)
			req, err := http.ReadRequest(br)
			if err == nil {
				b, _ := io.ReadAll(req.Body)
				body := req.Method + " " + strconv.Itoa(len(b))
				fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
			}
			_ = conn.Close()
			closed <- struct{}{}
		}
	}()
	f.Route(1)
	c := dialClient(t, addr)
	for i, r := range []struct{ method, body string }{{"GET", ""}, {"GET", ""}, {"POST", "abc"}, {"GET", ""}, {"POST", "de"}} {
		want := r.method + " " + strconv.Itoa(len(r.body))
		if code, got := c.text(r.method, "/", r.body); code != http.StatusOK || got != want {
			t.Fatalf("request %d: %d %q, want 200 %q", i, code, got, want)
		}
		select { // the CMD closed the connection the front keeps
		case <-closed:
		case <-time.After(wait):
			t.Fatal("the CMD did not close")
		}
	}
	if s := f.Stats(); s.BadGateway != 0 {
		t.Errorf("%d answered 502", s.BadGateway)
	}
}

// 1xx responses reach the client before the final one.
func TestTransportEarlyHints(t *testing.T) {
	f, addr := newFront(t, Config{})
	serveCMD(t, f, 1, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		_, _ = io.WriteString(w, "final")
	}), nil)
	c := dialClient(t, addr)
	resp := c.do("GET", "/", "")
	if resp.StatusCode != http.StatusEarlyHints || resp.Header.Get("Link") == "" {
		t.Fatalf("first response %s %v, want 103 with Link", resp.Status, resp.Header)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(b) != "final" {
		t.Fatalf("final response %s %q", resp.Status, b)
	}
}

// A CMD that answers before it has read a large body is answered as it
// said, and the client's connection goes on.
func TestTransportAnswerBeforeBody(t *testing.T) {
	f, addr := newFront(t, Config{})
	serveCMD(t, f, 1, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			http.Error(w, "too big", http.StatusRequestEntityTooLarge)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}), nil)
	c := dialClient(t, addr)
	_ = c.conn.SetDeadline(time.Now().Add(wait))
	go func() { // the front may close before the body is sent whole
		_, _ = io.WriteString(c.conn, "POST /big HTTP/1.1\r\nHost: front\r\nContent-Length: 4194304\r\n\r\n"+strings.Repeat("x", 4<<20))
	}()
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("got %s, want 413", resp.Status)
	}
	c = dialClient(t, addr)
	if code, got := c.text("GET", "/", ""); code != http.StatusOK || got != "ok" {
		t.Fatalf("after: %d %q", code, got)
	}
	if s := f.Stats(); s.BadGateway != 0 {
		t.Errorf("%d answered 502", s.BadGateway)
	}
}

// A client that leaves ends its request on the CMD: while the CMD thinks
// (no response yet) and while it streams.
func TestTransportClientLeaves(t *testing.T) {
	f, addr := newFront(t, Config{})
	ended := make(chan string, 2)
	thinking := make(chan struct{})
	serveCMD(t, f, 1, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stream" {
			w.Header().Set("Content-Type", "text/event-stream")
			rc := http.NewResponseController(w)
			for r.Context().Err() == nil {
				if _, err := io.WriteString(w, "data: x\n\n"); err != nil {
					break
				}
				if err := rc.Flush(); err != nil {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
		} else {
			close(thinking)
			<-r.Context().Done()
		}
		ended <- r.URL.Path
	}), nil)

	c := dialClient(t, addr)
	_ = c.conn.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(c.conn, "GET /think HTTP/1.1\r\nHost: front\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-thinking:
	case <-time.After(wait):
		t.Fatal("the request did not reach the CMD")
	}
	_ = c.conn.Close()
	c = dialClient(t, addr)
	resp := c.do("GET", "/stream", "")
	if _, err := resp.Body.Read(make([]byte, 9)); err != nil {
		t.Fatal(err)
	}
	_ = c.conn.Close()
	got := map[string]bool{}
	for range 2 {
		select {
		case p := <-ended:
			got[p] = true
		case <-time.After(wait):
			t.Fatalf("the CMD's requests did not end when their clients left; ended: %v", got)
		}
	}
}

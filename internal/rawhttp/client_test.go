package rawhttp

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/batonhq/baton/internal/testproc"
)

func TestGet(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	var conns atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/bad" {
				http.Error(w, "no", http.StatusTeapot)
				return
			}
			w.Header().Set("X-Pid", "42")
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		},
	}
	done := make(chan struct{})
	go func() { _ = srv.Serve(ln); close(done) }()
	defer func() { _ = srv.Close(); <-done }()

	for _, keepAlive := range []bool{true, false} {
		conns.Store(0)
		c := &Client{Addr: ln.Addr().String(), KeepAlive: keepAlive}
		for range 3 {
			h, err := c.Get("/")
			if err != nil || h.Get("X-Pid") != "42" {
				t.Fatalf("keep-alive %v: Get = %v, %v", keepAlive, h, err)
			}
		}
		want := int64(3)
		if keepAlive {
			want = 1
		}
		if n := conns.Load(); n != want {
			t.Errorf("keep-alive %v: %d connections for 3 requests, want %d", keepAlive, n, want)
		}
		var se *StatusError
		if _, err := c.Get("/bad"); !errors.As(err, &se) || se.Code != http.StatusTeapot || !strings.Contains(err.Error(), "418") {
			t.Errorf("keep-alive %v: Get /bad = %v, want a status error", keepAlive, err)
		}
		c.Close()
	}
}

// TestNoRetry: a reused connection closed by the server before it answers
// is a failure, not a silent second attempt.
func TestNoRetry(t *testing.T) {
	testproc.CheckFDs(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		buf := make([]byte, 4096)
		_, _ = c.Read(buf)
		_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
		_, _ = c.Read(buf) // the second request: close without answering
		_ = c.Close()
	}()
	c := &Client{Addr: ln.Addr().String(), KeepAlive: true}
	defer c.Close()
	if _, err := c.Get("/"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get("/"); err == nil {
		t.Error("second request on a connection closed unanswered succeeded")
	}
}

// TestDialAndUserAgent: Client.Dial opens the connections (again after a
// failed request), and UserAgent is sent.
func TestDialAndUserAgent(t *testing.T) {
	testproc.CheckFDs(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.UserAgent() != "rawhttp-test" || r.URL.Path == "/bad" {
			http.Error(w, r.UserAgent(), http.StatusBadRequest)
		}
	})}
	done := make(chan struct{})
	go func() { _ = srv.Serve(ln); close(done) }()
	defer func() { _ = srv.Close(); <-done }()
	var dials int
	c := &Client{
		Addr: ln.Addr().String(), KeepAlive: true, UserAgent: "rawhttp-test",
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials++
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
	defer c.Close()
	for _, path := range []string{"/", "/", "/bad", "/"} {
		_, err := c.Get(path)
		if (err != nil) != (path == "/bad") {
			t.Errorf("Get %s: %v", path, err)
		}
	}
	if dials != 2 {
		t.Errorf("%d dials, want 2 (one, and one after the failed request)", dials)
	}
}

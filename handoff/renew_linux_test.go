package handoff

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// drainForRenew shuts s down as a watch window's drain does: the socket
// is kept for Renew.
func drainForRenew(t *testing.T, s Server, served chan error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(withRenew(context.Background()), wait)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve = %v", err)
	}
}

func serveAsync(s Server) chan error {
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	return served
}

// echoOnce dials addr, writes a line and returns what came back.
func echoOnce(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return line
}

func echo(c net.Conn) {
	line, _ := bufio.NewReader(c).ReadString('\n')
	_, _ = io.WriteString(c, strings.ToUpper(line))
}

// TCPServer and Rebuild serve the same socket again after a drain that
// kept it; a connection made while nothing accepts waits in the backlog
// and is answered by the renewed server.
func TestRenewTCPAndRebuild(t *testing.T) {
	checkLeaks(t)
	for _, tc := range []struct {
		name string
		make func(net.Listener) Server
	}{
		{"tcp", func(ln net.Listener) Server { return TCP(ln, echo) }},
		{"rebuild", func(ln net.Listener) Server {
			return Rebuild(ln, func(ln net.Listener) Server { return TCP(ln, echo) })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			s := tc.make(ln)
			served := serveAsync(s)
			if got := echoOnce(t, addr); got != "PING\n" {
				t.Fatalf("before: %q", got)
			}
			drainForRenew(t, s, served)
			// Nothing accepts now; the kernel still queues.
			waiting, err := net.DialTimeout("tcp", addr, wait)
			if err != nil {
				t.Fatalf("dial while drained: %v (refused: the socket was closed)", err)
			}
			defer waiting.Close()
			n, err := s.(Renewer).Renew()
			if err != nil {
				t.Fatal(err)
			}
			served = serveAsync(n)
			_ = waiting.SetDeadline(time.Now().Add(wait))
			if _, err := io.WriteString(waiting, "queued\n"); err != nil {
				t.Fatal(err)
			}
			if line, err := bufio.NewReader(waiting).ReadString('\n'); err != nil || line != "QUEUED\n" {
				t.Fatalf("the queued connection: %q, %v", line, err)
			}
			if got := echoOnce(t, addr); got != "PING\n" {
				t.Fatalf("after the renewal: %q", got)
			}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			if err := n.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			if err := <-served; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// An HTTPServer renewed keeps its graces and its http.Server's handler;
// a drain that did not keep the socket cannot be renewed.
func TestRenewHTTP(t *testing.T) {
	checkLeaks(t)
	s, addr, served := drainServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "hello") }))
	s.NewConnGrace = 123 * time.Millisecond
	drainForRenew(t, s, served)
	n, err := s.Renew()
	if err != nil {
		t.Fatal(err)
	}
	h := n.(*HTTPServer)
	if h.IdleGrace != s.IdleGrace || h.NewConnGrace != s.NewConnGrace {
		t.Errorf("renewed graces: idle %v new %v, want %v %v", h.IdleGrace, h.NewConnGrace, s.IdleGrace, s.NewConnGrace)
	}
	served = serveAsync(h)
	c := mustDial(t, "tcp", addr)
	resp, err := c.rawDo("/")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("after the renewal: %v %v", resp, err)
	}
	_ = c.Close()
	drained(t, shutdownAsync(h, wait), served)

	plain, _, served2 := drainServer(t, http.NotFoundHandler())
	drained(t, shutdownAsync(plain, wait), served2)
	if _, err := plain.Renew(); err == nil {
		t.Error("Renew after a drain that did not keep the socket: no error")
	}
}

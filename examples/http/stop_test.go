//go:build linux

package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/exampletest"
	"github.com/batonhq/baton/internal/testproc"
)

// startExample runs the example socket-activated with the flags given,
// once it serves.
func startExample(t *testing.T, flags ...string) *exampletest.Server {
	t.Helper()
	return exampletest.Start(t, exampletest.Config{Helper: "http", Socket: "http", Args: flags})
}

// conn is one keep-alive HTTP/1.1 connection; it never retries.
type conn struct {
	c  net.Conn
	br *bufio.Reader
}

type answer struct {
	status int
	body   string
	close  bool // the server said Connection: close
	pid    string
}

func dial(t *testing.T, addr string) *conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &conn{c: c, br: bufio.NewReader(c)}
}

func (c *conn) get(path string) (answer, error) {
	_ = c.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.c, "GET "+path+" HTTP/1.1\r\nHost: t\r\n\r\n"); err != nil {
		return answer{}, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return answer{}, err
	}
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	return answer{status: resp.StatusCode, body: string(b), close: resp.Close, pid: resp.Header.Get("X-Pid")}, err
}

// TestStopDelay: after SIGTERM the example goes on serving for
// -stop-delay with /healthz answering 503 and new connections taken, then
// drains and exits 0. The requests that count go on one keep-alive
// connection, which the drain ends with Connection: close: every one
// before must have been answered.
func TestStopDelay(t *testing.T) {
	s := startExample(t, "-stop-delay", "500ms")
	addr, p := s.Addr, s.First
	c := dial(t, addr)
	if a, err := c.get("/healthz"); err != nil || a.status != 200 || a.body != "ok\n" || a.close {
		t.Fatalf("/healthz before the stop = %+v, %v; want 200 ok", a, err)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Stopping is closed at once: /healthz turns 503 before the drain.
	for {
		a, err := c.get("/healthz")
		if err != nil {
			t.Fatalf("/healthz after SIGTERM: %v", err)
		}
		if a.close {
			t.Fatalf("the drain began before /healthz said 503 (last answer %+v)", a)
		}
		if a.status == http.StatusServiceUnavailable {
			if a.body != "stopping\n" {
				t.Errorf("/healthz body %q, want \"stopping\\n\"", a.body)
			}
			break
		}
		if a.status != 200 {
			t.Fatalf("/healthz = %+v", a)
		}
	}
	// New connections are still taken and served as usual (no
	// Connection: close): the listener is open during the delay.
	for i := range 10 {
		f := dial(t, addr)
		if a, err := f.get("/"); err != nil || a.status != 200 || a.close {
			t.Fatalf("request %d on a new connection during the stop delay = %+v, %v; want 200, kept open", i+1, a, err)
		}
		_ = f.c.Close()
	}
	// Served until the drain ends the connection, without a failure.
	served, failed := 0, 0
	for {
		a, err := c.get("/")
		if err != nil {
			failed++
			t.Errorf("request %d during the stop delay: %v", served+1, err)
			break
		}
		if a.status != 200 {
			failed++
			t.Errorf("request %d during the stop delay: %+v", served+1, a)
		}
		served++
		if a.close {
			break
		}
	}
	t.Logf("%d requests served during the stop delay, %d failed", served, failed)
	st, err := p.Wait()
	if err != nil || !st.Success() {
		t.Errorf("example exited with %v, %v; want status 0", st, err)
	}
	if _, err := os.Stat(s.PIDFile); !os.IsNotExist(err) {
		t.Errorf("pid file left after the stop: %v", err)
	}
}

// TestUpgradeNotDelayed: with a stop delay of a minute, an upgrade still
// hands over and drains at once, and /healthz of the old generation never
// says 503 (a hand-over is not a stop). A second SIGTERM ends the delay of
// the new generation's stop.
func TestUpgradeNotDelayed(t *testing.T) {
	s := startExample(t, "-stop-delay", "1m")
	addr, p := s.Addr, s.First
	c := dial(t, addr)
	if a, err := c.get("/healthz"); err != nil || a.status != 200 {
		t.Fatalf("/healthz = %+v, %v", a, err)
	}
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	next := s.Next()
	for {
		a, err := c.get("/healthz")
		if err != nil || a.status != 200 || a.body != "ok\n" {
			t.Fatalf("/healthz of the old generation during the upgrade = %+v, %v; want 200 ok", a, err)
		}
		if a.close {
			break // draining
		}
	}
	// Well before the minute of the stop delay.
	testproc.WaitGone(t, p.Pid)
	if st, err := p.Wait(); err != nil || !st.Success() {
		t.Errorf("old generation exited with %v, %v", st, err)
	}

	c = dial(t, addr)
	if a, err := c.get("/"); err != nil || a.status != 200 || a.pid != fmt.Sprint(next) {
		t.Fatalf("GET / = %+v, %v; want an answer from pid %d", a, err, next)
	}
	if a, err := c.get("/healthz"); err != nil || a.status != 200 || a.body != "ok\n" {
		t.Fatalf("/healthz of the new generation = %+v, %v", a, err)
	}
	if err := syscall.Kill(next, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for {
		a, err := c.get("/healthz")
		if err != nil || a.close {
			t.Fatalf("/healthz during the stop delay = %+v, %v", a, err)
		}
		if a.status == http.StatusServiceUnavailable {
			break
		}
	}
	if err := syscall.Kill(next, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	testproc.WaitGone(t, next)
}

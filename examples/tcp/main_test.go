//go:build linux

package main

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/exampletest"
	"github.com/batonhq/baton/internal/testproc"
)

func TestMain(m *testing.M) {
	exampletest.Register("tcp", func(pidfile string, _ []string) error {
		return run("127.0.0.1:0", pidfile)
	})
	exampletest.Main(m)
}

// start runs the example socket-activated (name "echo").
func start(t *testing.T) *exampletest.Server {
	return exampletest.Start(t, exampletest.Config{Helper: "tcp", Socket: "echo"})
}

// TestEchoAcrossUpgrade: a connection opened before an upgrade keeps its
// echo after it; new connections are served; the old generation exits
// once that connection is closed.
func TestEchoAcrossUpgrade(t *testing.T) {
	s := start(t)
	gen1, addr := s.PID(), s.Addr
	old, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	oldR := bufio.NewReader(old)
	echo(t, old, oldR, "before")
	s.Upgrade()
	echo(t, old, oldR, "after") // still generation 1, draining
	fresh, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	echo(t, fresh, bufio.NewReader(fresh), "fresh")
	_ = fresh.Close()
	if !testproc.Alive(gen1) {
		t.Error("generation 1 exited with a connection open")
	}
	_ = old.Close()
	testproc.WaitGone(t, gen1)
	s.Stop() // generation 2
}

// TestOutOfFDs: with RLIMIT_NOFILE 64 and 200 connections open, Accept
// fails with EMFILE; the server waits and retries instead of exiting, and
// once the connections close it serves again. (Before, TCPServer ended on
// the first Accept error and the process exited.)
func TestOutOfFDs(t *testing.T) {
	s := start(t)
	pid, addr := s.PID(), s.Addr
	testproc.LimitFDs(t, pid, 64)
	var conns []net.Conn
	for range 200 {
		c, err := net.Dial("tcp", addr) // the kernel completes them: the backlog
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	// The first ones are echoed; later ones wait for fds.
	echo(t, conns[0], bufio.NewReader(conns[0]), "first")
	time.Sleep(100 * time.Millisecond) // let Accept hit EMFILE a few times
	for _, c := range conns {
		_ = c.Close()
	}
	if !testproc.Alive(pid) {
		t.Fatal("the server exited when it ran out of fds")
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	echo(t, c, bufio.NewReader(c), "after")
	_ = c.Close() // the drain waits for open connections
	s.Stop()
}

func echo(t *testing.T, c net.Conn, r *bufio.Reader, msg string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write([]byte(msg + "\n")); err != nil {
		t.Fatal(err)
	}
	line, err := r.ReadString('\n')
	if err != nil || line != msg+"\n" {
		t.Fatalf("echo of %q: %q, %v", msg, line, err)
	}
}

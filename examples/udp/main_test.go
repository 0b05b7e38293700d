//go:build linux

package main

import (
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/exampletest"
	"github.com/batonhq/baton/internal/testproc"
)

func TestMain(m *testing.M) {
	exampletest.Register("udp", func(pidfile string, _ []string) error {
		return run("127.0.0.1:0", pidfile)
	})
	exampletest.Main(m)
}

// TestEchoAcrossUpgrade: datagrams are echoed before, during and after an
// upgrade; the old generation exits once it handed over.
func TestEchoAcrossUpgrade(t *testing.T) {
	s := exampletest.Start(t, exampletest.Config{Helper: "udp", Socket: "echo", Network: "udp"})
	c, err := net.Dial("udp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	gen1 := s.PID()
	echo(t, c, "before")
	if err := syscall.Kill(gen1, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// Datagrams sent while the upgrade runs are answered by one
	// generation or the other: none is lost in the shared socket.
	for i := range 50 {
		echo(t, c, "during "+strconv.Itoa(i))
	}
	s.Next()
	testproc.WaitGone(t, gen1)
	echo(t, c, "after")
	s.Stop()
}

// echo sends msg and waits for the same datagram back.
func echo(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != msg {
		t.Fatalf("echo of %q: %q, %v", msg, buf[:n], err)
	}
}

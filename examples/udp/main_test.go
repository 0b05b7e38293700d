//go:build linux

package main

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/spawn"
	"github.com/batonhq/baton/internal/testproc"
)

func TestMain(m *testing.M) {
	testproc.Register("udp", func() {
		if err := run("127.0.0.1:0", testproc.Args()[0]); err != nil {
			os.Exit(1)
		}
	})
	testproc.Main(m)
}

// TestEchoAcrossUpgrade: datagrams are echoed before, during and after an
// upgrade; the old generation exits once it handed over.
func TestEchoAcrossUpgrade(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pf, err := pc.(*net.UDPConn).File()
	_ = pc.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	pidfile := filepath.Join(t.TempDir(), "pid")
	cmd := testproc.Command(t, "udp", pidfile)
	p, err := spawn.Start(&spawn.Config{
		Path: cmd.Path, Args: cmd.Args, Env: cmd.Env, Stderr: os.Stderr,
		Files: []*os.File{pf}, Names: []string{"echo"}, Mode: spawn.SelfFix,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = p.Wait() }()
	c, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	gen1 := testproc.WaitPIDFile(t, pidfile, 0)
	echo(t, c, "before")
	if err := syscall.Kill(gen1, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// Datagrams sent while the upgrade runs are answered by one
	// generation or the other: none is lost in the shared socket.
	for i := range 50 {
		echo(t, c, "during "+strconv.Itoa(i))
	}
	gen2 := testproc.WaitPIDFile(t, pidfile, gen1)
	testproc.WaitGone(t, gen1)
	echo(t, c, "after")
	if err := syscall.Kill(gen2, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	testproc.WaitGone(t, gen2)
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

package notify

import (
	"sync"
	"testing"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// drain reads datagrams until the receiver is closed.
func (r *receiver) drain() (stop func()) {
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, MaxMessageSize)
		oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred)+unix.CmsgSpace(4*MaxFDsPerMessage))
		for {
			_, oobn, _, _, err := r.conn.ReadMsgUnix(buf, oob)
			if err != nil {
				return
			}
			cmsgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
			for _, cm := range cmsgs {
				fds, _ := unix.ParseUnixRights(&cm)
				for _, fd := range fds {
					_ = unix.Close(fd)
				}
			}
		}
	})
	return func() { _ = r.conn.Close(); wg.Wait() }
}

// dialDraining returns a Client of a receiver that reads concurrently;
// both are closed when b ends.
func dialDraining(b *testing.B) *Client {
	r := newReceiver(b, false)
	c, err := Dial(r.socket)
	if err != nil {
		b.Fatal(err)
	}
	stop := r.drain()
	b.Cleanup(func() { _ = c.Close(); stop() })
	return c
}

// BenchmarkReady: one READY=1 datagram to a real receiver with
// SO_PASSCRED that reads concurrently.
func BenchmarkReady(b *testing.B) {
	c := dialDraining(b)
	loopReady(b, c)
}

// BenchmarkDialReady: FromEnv-style use, a new Client per message, as
// a program that notifies once would do.
func BenchmarkDialReady(b *testing.B) {
	r := newReceiver(b, false)
	stop := r.drain()
	defer stop()
	b.ReportAllocs()
	for b.Loop() {
		c, err := Dial(r.socket)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Ready(); err != nil {
			b.Fatal(err)
		}
		_ = c.Close()
	}
}

// BenchmarkBarrier: BARRIER=1 and the wait for the receiver to close the
// pipe.
func BenchmarkBarrier(b *testing.B) {
	c := dialDraining(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Barrier(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadyDisabled: the cost of a call without NOTIFY_SOCKET.
func BenchmarkReadyDisabled(b *testing.B) {
	c := &Client{sys: defaultSys}
	loopReady(b, c)
}

// BenchmarkReadyGoSystemd: go-systemd's daemon.SdNotify, for comparison
// (it dials a new socket per call).
func BenchmarkReadyGoSystemd(b *testing.B) {
	r := newReceiver(b, false)
	b.Setenv(EnvSocket, r.socket)
	stop := r.drain()
	defer stop()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
			b.Fatal(err)
		}
	}
}

// loopReady calls c.Ready in b's loop, counting allocations.
func loopReady(b *testing.B, c *Client) {
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Ready(); err != nil {
			b.Fatal(err)
		}
	}
}

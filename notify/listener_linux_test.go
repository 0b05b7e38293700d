package notify

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testproc"
	"golang.org/x/sys/unix"
)

func listenT(t *testing.T, abstract bool) *Listener {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "notify")
	if abstract {
		socket = "@baton-notify-listener-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(abstractSeq.Add(1), 10)
	}
	l, err := Listen(socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func receiveT(t *testing.T, l *Listener) *Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	m, err := l.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestListener: what a Client sends, a Listener receives with the sender's
// credentials, its fds and its fields.
func TestListener(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	for _, abstract := range []bool{false, true} {
		l := listenT(t, abstract)
		c := dialT(t, &receiver{socket: l.Socket()})
		if err := c.HandOver(77); err != nil {
			t.Fatal(err)
		}
		m := receiveT(t, l)
		if m.State != "MAINPID=77\nREADY=1" || m.PID != os.Getpid() || m.UID != os.Getuid() || m.GID != os.Getgid() || len(m.Files) != 0 {
			t.Errorf("got %+v", m)
		}
		if v, ok := m.Lookup("MAINPID"); v != "77" || !ok {
			t.Errorf("Lookup(MAINPID) = %q, %v", v, ok)
		}
		if v, ok := m.Lookup("READY"); v != "1" || !ok {
			t.Errorf("Lookup(READY) = %q, %v", v, ok)
		}
		if _, ok := m.Lookup("STATUS"); ok {
			t.Errorf("Lookup(STATUS) found")
		}

		f := tempFile(t)
		if err := c.FDStore("x", f, f); err != nil {
			t.Fatal(err)
		}
		m = receiveT(t, l)
		if m.State != "FDSTORE=1\nFDNAME=x" || len(m.Files) != 2 || fileID(t, m.Files[1]) != fileID(t, f) {
			t.Errorf("got %+v", m)
		}
		flags, err := unix.FcntlInt(m.Files[0].Fd(), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC == 0 {
			t.Errorf("received fd not close-on-exec: %#x %v", flags, err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}

		// A barrier against a Listener: the Message holds the pipe until
		// it is closed.
		done := make(chan error, 1)
		go func() { done <- c.Barrier(t.Context()) }()
		m = receiveT(t, l)
		if m.State != "BARRIER=1" || len(m.Files) != 1 {
			t.Errorf("got %+v", m)
		}
		_ = m.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestListenerDropsBadDatagrams: a datagram over 4096 bytes (sent raw, a
// Client refuses) is dropped with its fds closed, and the next one is read.
func TestListenerDropsBadDatagrams(t *testing.T) {
	testproc.CheckFDs(t)
	l := listenT(t, false)
	raw, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(raw)
	to := &unix.SockaddrUnix{Name: l.Socket()}
	f := tempFile(t)
	if err := unix.Sendmsg(raw, []byte(strings.Repeat("x", MaxMessageSize+1)), unix.UnixRights(int(f.Fd())), to, 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Sendmsg(raw, []byte(strings.Repeat("y", 3*MaxMessageSize)), unix.UnixRights(int(f.Fd())), to, 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Sendmsg(raw, []byte("READY=1"), nil, to, 0); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		m, err := l.Receive(t.Context())
		if !errors.Is(err, ErrTooLong) || m != nil {
			t.Fatalf("got a message (%v) and %v; want ErrTooLong", m != nil, err)
		}
		t.Log(err)
	}
	if m := receiveT(t, l); m.State != "READY=1" {
		t.Errorf("got %q", m.State)
	}
}

// TestListenerContext: Receive returns ctx.Err() itself, works again after,
// and returns net.ErrClosed after Close.
func TestListenerContext(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	l := listenT(t, true)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := l.Receive(ctx); err != context.DeadlineExceeded { //nolint:errorlint // documented: ctx.Err() itself
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
	if _, err := l.Receive(ctx); err != context.DeadlineExceeded { //nolint:errorlint // documented: ctx.Err() itself
		t.Fatalf("ended ctx: got %v", err)
	}
	c := dialT(t, &receiver{socket: l.Socket()})
	if err := c.Ready(); err != nil {
		t.Fatal(err)
	}
	if m := receiveT(t, l); m.State != "READY=1" {
		t.Errorf("got %q after a deadline", m.State)
	}
	done := make(chan error, 1)
	go func() {
		_, err := l.Receive(context.Background())
		done <- err
	}()
	time.Sleep(10 * time.Millisecond) // let it block; either order must give ErrClosed
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Receive after Close: %v", err)
	}
}

// TestListen: an existing path is refused, bad addresses are refused, and
// Close removes the path Listen bound.
func TestListen(t *testing.T) {
	testproc.CheckFDs(t)
	l := listenT(t, false)
	if _, err := Listen(l.Socket()); !errors.Is(err, unix.EADDRINUSE) || !strings.Contains(err.Error(), l.Socket()) {
		t.Errorf("second Listen: %v", err)
	}
	for _, bad := range []string{"", "relative", "@"} {
		if _, err := Listen(bad); !errors.Is(err, ErrBadSocket) {
			t.Errorf("Listen(%q): %v", bad, err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(l.Socket()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("path left behind: %v", err)
	}
	if _, err := Dial(l.Socket()); !errors.Is(err, unix.ENOENT) {
		t.Errorf("Dial after Close: %v", err)
	}
}

func TestLookupState(t *testing.T) {
	tests := []struct {
		state, key, want string
		ok               bool
	}{
		{"READY=1", "READY", "1", true},
		{"STATUS=a=b", "STATUS", "a=b", true},
		{"STATUS=", "STATUS", "", true},
		{"MAINPID=1\nMAINPID=2", "MAINPID", "1", true},
		{"READY", "READY", "", false},
		{"XREADY=1", "READY", "", false},
		{"READY=1\n", "READY", "1", true},
		{"", "READY", "", false},
	}
	for _, tt := range tests {
		got, ok := LookupState(tt.state, tt.key)
		if got != tt.want || ok != tt.ok {
			t.Errorf("LookupState(%q, %q) = %q, %v; want %q, %v", tt.state, tt.key, got, ok, tt.want, tt.ok)
		}
	}
}

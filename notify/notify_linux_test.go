package notify

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testproc"
	"golang.org/x/sys/unix"
)

// fixedSys is the real process with a fixed CLOCK_MONOTONIC.
func fixedSys(mono time.Duration) *sysenv {
	s := *defaultSys
	s.monotonic = func() (time.Duration, error) { return mono, nil }
	return &s
}

func dialT(t *testing.T, r *receiver) *Client {
	t.Helper()
	c, err := Dial(r.socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestMessages sends every message kind to a real receiver, over a path
// and an abstract socket, and checks the exact bytes of each datagram, that
// it carried no fds, and that the kernel attributed it to this process.
func TestMessages(t *testing.T) {
	testproc.CheckFDs(t)
	tests := []struct {
		name string
		send func(*Client) error
		want string
	}{
		{"Ready", (*Client).Ready, "READY=1"},
		{"Reloading", (*Client).Reloading, "RELOADING=1\nMONOTONIC_USEC=123456789"},
		{"Stopping", (*Client).Stopping, "STOPPING=1"},
		{"Status", func(c *Client) error { return c.Status("serving 3 listeners: ok = 100%") }, "STATUS=serving 3 listeners: ok = 100%"},
		{"StatusEmpty", func(c *Client) error { return c.Status("") }, "STATUS="},
		{"Errno", func(c *Client) error { return c.Errno(98) }, "ERRNO=98"},
		{"ErrnoZero", func(c *Client) error { return c.Errno(0) }, "ERRNO=0"},
		{"BusError", func(c *Client) error { return c.BusError("org.freedesktop.DBus.Error.Failed") }, "BUSERROR=org.freedesktop.DBus.Error.Failed"},
		{"MainPID", func(c *Client) error { return c.MainPID(4242) }, "MAINPID=4242"},
		{"HandOver", func(c *Client) error { return c.HandOver(4242) }, "MAINPID=4242\nREADY=1"},
		{"Watchdog", (*Client).Watchdog, "WATCHDOG=1"},
		{"WatchdogTrigger", (*Client).WatchdogTrigger, "WATCHDOG=trigger"},
		{"SetWatchdogTimeout", func(c *Client) error { return c.SetWatchdogTimeout(2500 * time.Millisecond) }, "WATCHDOG_USEC=2500000"},
		{"ExtendTimeout", func(c *Client) error { return c.ExtendTimeout(90 * time.Second) }, "EXTEND_TIMEOUT_USEC=90000000"},
		{"ExtendTimeoutRoundsDown", func(c *Client) error { return c.ExtendTimeout(1500 * time.Nanosecond) }, "EXTEND_TIMEOUT_USEC=1"},
		{"FDStoreRemove", func(c *Client) error { return c.FDStoreRemove("http") }, "FDSTOREREMOVE=1\nFDNAME=http"},
		{"Send", func(c *Client) error { return c.Send("READY=1\nSTATUS=up\nX_CUSTOM=1") }, "READY=1\nSTATUS=up\nX_CUSTOM=1"},
		{"SendMax", func(c *Client) error { return c.Send("STATUS=" + strings.Repeat("x", MaxMessageSize-7)) }, "STATUS=" + strings.Repeat("x", MaxMessageSize-7)},
	}
	for _, abstract := range []bool{false, true} {
		r := newReceiver(t, abstract)
		c := dialT(t, r)
		c.sys = fixedSys(123456789 * time.Microsecond)
		for _, tt := range tests {
			t.Run(tt.name+map[bool]string{false: "/path", true: "/abstract"}[abstract], func(t *testing.T) {
				if err := tt.send(c); err != nil {
					t.Fatal(err)
				}
				m := r.recv()
				if m.data != tt.want {
					t.Errorf("got %q, want %q", m.data, tt.want)
				}
				if m.pid != int32(os.Getpid()) || m.uid != uint32(os.Getuid()) {
					t.Errorf("credentials pid %d uid %d, want %d %d", m.pid, m.uid, os.Getpid(), os.Getuid())
				}
				if len(m.files) != 0 {
					t.Errorf("%d fds attached, want none", len(m.files))
				}
			})
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReloadingRealClock checks MONOTONIC_USEC against CLOCK_MONOTONIC
// read before and after the call.
func TestReloadingRealClock(t *testing.T) {
	r := newReceiver(t, false)
	c := dialT(t, r)
	before, _ := monotonicNow()
	if err := c.Reloading(); err != nil {
		t.Fatal(err)
	}
	after, _ := monotonicNow()
	m := r.recv()
	usec, ok := strings.CutPrefix(m.data, "RELOADING=1\nMONOTONIC_USEC=")
	if !ok {
		t.Fatalf("got %q", m.data)
	}
	n, err := strconv.ParseInt(usec, 10, 64)
	if err != nil {
		t.Fatalf("MONOTONIC_USEC=%q: %v", usec, err)
	}
	if n < before.Microseconds() || n > after.Microseconds() {
		t.Errorf("MONOTONIC_USEC=%d outside [%d, %d]", n, before.Microseconds(), after.Microseconds())
	}
}

// TestInvalid checks that bad arguments are errors and that nothing
// reaches the receiver.
func TestInvalid(t *testing.T) {
	r := newReceiver(t, false)
	c := dialT(t, r)
	tests := []struct {
		name string
		send func(*Client) error
		want error
	}{
		{"StatusNewline", func(c *Client) error { return c.Status("a\nREADY=1") }, ErrInvalid},
		{"StatusCR", func(c *Client) error { return c.Status("a\rb") }, ErrInvalid},
		{"StatusNUL", func(c *Client) error { return c.Status("a\x00b") }, ErrInvalid},
		{"StatusTooLong", func(c *Client) error { return c.Status(strings.Repeat("x", MaxMessageSize)) }, ErrTooLong},
		{"BusErrorNewline", func(c *Client) error { return c.BusError("x\n") }, ErrInvalid},
		{"ErrnoNegative", func(c *Client) error { return c.Errno(-1) }, ErrInvalid},
		{"MainPIDZero", func(c *Client) error { return c.MainPID(0) }, ErrInvalid},
		{"HandOverNegative", func(c *Client) error { return c.HandOver(-5) }, ErrInvalid},
		{"ExtendTimeoutZero", func(c *Client) error { return c.ExtendTimeout(0) }, ErrInvalid},
		{"ExtendTimeoutSub-µs", func(c *Client) error { return c.ExtendTimeout(999) }, ErrInvalid},
		{"SetWatchdogTimeoutNegative", func(c *Client) error { return c.SetWatchdogTimeout(-time.Second) }, ErrInvalid},
		{"SendEmpty", func(c *Client) error { return c.Send("") }, ErrInvalid},
		{"SendNUL", func(c *Client) error { return c.Send("READY=1\x00") }, ErrInvalid},
		{"Send4097", func(c *Client) error { return c.Send(strings.Repeat("x", MaxMessageSize+1)) }, ErrTooLong},
		{"SendFilesTooMany", func(c *Client) error { return c.SendFiles("X=1", make([]*os.File, MaxFDsPerMessage+1)...) }, ErrInvalid},
		{"SendFilesNil", func(c *Client) error { return c.SendFiles("X=1", nil) }, ErrInvalid},
		{"FDStoreRemoveEmpty", func(c *Client) error { return c.FDStoreRemove("") }, ErrInvalid},
		{"FDStoreRemoveColon", func(c *Client) error { return c.FDStoreRemove("a:b") }, ErrInvalid},
		{"FDStoreNoFiles", func(c *Client) error { return c.FDStore("x") }, ErrInvalid},
		{"FDStoreNilFile", func(c *Client) error { return c.FDStore("x", os.Stdin, nil) }, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.send(c)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			t.Log(err)
		})
	}
	r.expectNothing()
}

// TestManagerGone: a receiver that closed (ECONNREFUSED) or whose path
// was removed (ENOENT) makes sends fail at once with an error naming the
// socket; Dial to nothing fails the same way.
func TestManagerGone(t *testing.T) {
	testproc.CheckFDs(t)
	for _, tt := range []struct {
		name     string
		abstract bool
		remove   bool
		want     syscall.Errno
	}{
		{"closed", false, false, unix.ECONNREFUSED},
		{"removed", false, true, unix.ENOENT},
		{"abstract", true, false, unix.ECONNREFUSED},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newReceiver(t, tt.abstract)
			c := dialT(t, r)
			_ = r.conn.Close() // a unixgram socket leaves its path behind
			if tt.remove {
				if err := os.Remove(r.socket); err != nil {
					t.Fatal(err)
				}
			}
			err := c.Ready()
			var se *SocketError
			if !errors.As(err, &se) || se.Socket != r.socket || se.Op != "send" || !errors.Is(err, tt.want) {
				t.Fatalf("Ready: %v, want a send *SocketError for %q wrapping %v", err, r.socket, tt.want)
			}
			if !strings.Contains(err.Error(), strconv.Quote(r.socket)) {
				t.Errorf("error does not name the socket: %v", err)
			}
			if _, err := Dial(r.socket); !errors.Is(err, tt.want) || !strings.Contains(err.Error(), strconv.Quote(r.socket)) {
				t.Errorf("Dial: %v, want %v naming the socket", err, tt.want)
			}
		})
	}
}

// TestSendTimeout: a manager that never reads fills its queue; a send then
// fails with ErrTimeout instead of hanging.
func TestSendTimeout(t *testing.T) {
	testproc.CheckFDs(t)
	r := newReceiver(t, false)
	c, err := Config{SendTimeout: 20 * time.Millisecond}.Dial(r.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 100000 {
		err = c.Status(strconv.Itoa(i))
		if err != nil {
			break
		}
	}
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("got %v, want ErrTimeout", err)
	}
	t.Log(err)
}

// TestFromEnv covers NOTIFY_SOCKET: unset (disabled, every call a no-op),
// unusable values (errors naming it), and a working one.
func TestFromEnv(t *testing.T) {
	testproc.CheckFDs(t)
	r := newReceiver(t, false)
	long := "/" + strings.Repeat("d", 120)
	for _, tt := range []struct {
		name, value string
		want        error
	}{
		{"empty", "", ErrBadSocket},
		{"relative", "run/notify", ErrBadSocket},
		{"dot", "./notify", ErrBadSocket},
		{"too long", long, ErrBadSocket},
		{"abstract too long", "@" + long, ErrBadSocket},
		{"bare @", "@", ErrBadSocket},
		{"vsock", "vsock:2:1234", ErrBadSocket},
		{"missing path", r.socket + ".missing", unix.ENOENT},
		{"missing dir", "/nonexistent-baton/notify", unix.ENOENT},
		{"not a socket", tempFile(t).Name(), unix.ECONNREFUSED},
		{"abstract unbound", "@baton-nobody-listens-" + strconv.Itoa(os.Getpid()), unix.ECONNREFUSED},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvSocket, tt.value)
			c, err := FromEnv()
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			var se *SocketError
			if !errors.As(err, &se) || se.Var != EnvSocket || se.Socket != tt.value {
				t.Fatalf("not a *SocketError naming NOTIFY_SOCKET=%q: %#v", tt.value, err)
			}
			if !strings.Contains(err.Error(), "NOTIFY_SOCKET="+strconv.Quote(tt.value)) {
				t.Errorf("message does not name the variable: %v", err)
			}
			if c.Enabled() || c.Ready() != nil {
				t.Errorf("returned client is not a no-op")
			}
			t.Log(err)
		})
	}

	t.Run("unset", func(t *testing.T) {
		t.Setenv(EnvSocket, "")
		os.Unsetenv(EnvSocket)
		c, err := FromEnv()
		if err != nil || c == nil {
			t.Fatalf("FromEnv: %v, %v", c, err)
		}
		checkNoOp(t, c)
	})
	t.Run("nil", func(t *testing.T) { checkNoOp(t, nil) })

	t.Run("set", func(t *testing.T) {
		t.Setenv(EnvSocket, r.socket)
		c, err := FromEnv()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if !c.Enabled() || c.Socket() != r.socket {
			t.Fatalf("Enabled %v Socket %q", c.Enabled(), c.Socket())
		}
		if err := c.Ready(); err != nil {
			t.Fatal(err)
		}
		if m := r.recv(); m.data != "READY=1" {
			t.Errorf("got %q", m.data)
		}
		if os.Getenv(EnvSocket) != r.socket {
			t.Errorf("NOTIFY_SOCKET was changed")
		}
	})
}

// checkNoOp calls every method of a disabled Client.
func checkNoOp(t *testing.T, c *Client) {
	t.Helper()
	if c.Enabled() || c.Socket() != "" {
		t.Errorf("Enabled %v Socket %q", c.Enabled(), c.Socket())
	}
	for name, call := range map[string]func() error{
		"Ready":              c.Ready,
		"Reloading":          c.Reloading,
		"Stopping":           c.Stopping,
		"Status":             func() error { return c.Status("x") },
		"Errno":              func() error { return c.Errno(1) },
		"BusError":           func() error { return c.BusError("x") },
		"MainPID":            func() error { return c.MainPID(1) },
		"HandOver":           func() error { return c.HandOver(1) },
		"Watchdog":           c.Watchdog,
		"WatchdogTrigger":    c.WatchdogTrigger,
		"SetWatchdogTimeout": func() error { return c.SetWatchdogTimeout(time.Second) },
		"ExtendTimeout":      func() error { return c.ExtendTimeout(time.Second) },
		"Barrier":            func() error { return c.Barrier(t.Context()) },
		"FDStore":            func() error { return c.FDStore("x", os.Stdin) },
		"FDStoreRemove":      func() error { return c.FDStoreRemove("x") },
		"Send":               func() error { return c.Send("READY=1") },
		"SendFiles":          func() error { return c.SendFiles("READY=1", os.Stdin) },
		"RunWatchdog":        func() error { return c.RunWatchdog(t.Context(), WatchdogConfig{}) },
		"Close":              c.Close,
	} {
		if err := call(); err != nil {
			t.Errorf("%s on a disabled client: %v", name, err)
		}
	}
	// Validation still applies: a bad argument is a bug wherever it runs.
	if err := c.Send(""); !errors.Is(err, ErrInvalid) {
		t.Errorf("Send(\"\") on a disabled client: %v", err)
	}
}

// TestClose: sends after Close fail with ErrClosed; Close twice is fine.
func TestClose(t *testing.T) {
	testproc.CheckFDs(t)
	r := newReceiver(t, false)
	c, err := Dial(r.socket)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := c.Ready(); !errors.Is(err, ErrClosed) {
		t.Errorf("Ready after Close: %v", err)
	}
	if err := c.Barrier(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("Barrier after Close: %v", err)
	}
}

// TestConcurrent sends from several goroutines while another closes the
// client at the end: every datagram arrives whole.
func TestConcurrent(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	r := newReceiver(t, false)
	c := dialT(t, r)
	const senders, each = 8, 50
	var wg sync.WaitGroup
	counts := map[string]int{}
	wg.Go(func() {
		for range senders * each {
			m, err := r.tryRecv(10 * time.Second)
			if err != nil {
				t.Error(err)
				return
			}
			counts[m.data]++
		}
	})
	var send sync.WaitGroup
	for i := range senders {
		send.Go(func() {
			for range each {
				if err := c.Status("sender " + strconv.Itoa(i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	send.Wait()
	wg.Wait()
	for i := range senders {
		if n := counts["STATUS=sender "+strconv.Itoa(i)]; n != each {
			t.Errorf("sender %d: %d datagrams, want %d", i, n, each)
		}
	}
}

func TestEnvHelpers(t *testing.T) {
	env := []string{"PATH=/bin", "NOTIFY_SOCKET=/run/n", "WATCHDOG_USEC=1", "WATCHDOG_PID=2", "NOTIFY_SOCKETX=keep", "LISTEN_FDS=1"}
	got := WithoutEnv(env)
	want := []string{"PATH=/bin", "NOTIFY_SOCKETX=keep", "LISTEN_FDS=1"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("WithoutEnv: %q, want %q", got, want)
	}
	if len(env) != 6 {
		t.Errorf("input modified")
	}

	for _, k := range envVars {
		t.Setenv(k, "1")
	}
	if err := UnsetEnv(); err != nil {
		t.Fatal(err)
	}
	for _, k := range envVars {
		if v, ok := os.LookupEnv(k); ok {
			t.Errorf("%s=%q still set", k, v)
		}
	}
}

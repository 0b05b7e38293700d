package notify

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/batonhq/baton/activation"
)

// Protocol limits.
const (
	// MaxMessageSize is the longest datagram the manager reads whole: it
	// reads 4096 bytes (PIPE_BUF) and drops, or on older versions
	// truncates, anything longer. Longer messages are an error here.
	MaxMessageSize = 4096

	// MaxFDsPerMessage is the kernel's SCM_MAX_FD: the most fds one
	// datagram can carry. FDStore sends more in several datagrams.
	MaxFDsPerMessage = 253

	// MaxFDNameLen is the longest FDNAME= the manager accepts.
	MaxFDNameLen = 255

	// DefaultSendTimeout bounds the wait for room in the manager's receive
	// queue when Config.SendTimeout is zero.
	DefaultSendTimeout = 5 * time.Second
)

// EnvSocket, EnvWatchdogUsec and EnvWatchdogPID name the variables the
// manager sets for a service.
const (
	EnvSocket       = "NOTIFY_SOCKET"
	EnvWatchdogUsec = "WATCHDOG_USEC"
	EnvWatchdogPID  = "WATCHDOG_PID"
)

// Config tunes a Client. The zero value is ready to use.
type Config struct {
	// SendTimeout bounds how long a send waits while the manager's
	// receive queue is full; then the send fails with ErrTimeout and
	// nothing is sent. Zero means DefaultSendTimeout.
	SendTimeout time.Duration
}

// Client sends notifications to one manager socket. It is safe for
// concurrent use. Every datagram is sent by the calling process, so the
// manager attributes it (through SO_PASSCRED) to this process's pid.
//
// A disabled Client (from FromEnv without NOTIFY_SOCKET) and a nil *Client
// accept every call, send nothing and return nil; Enabled reports false.
type Client struct {
	socket string // as given; "" when disabled
	envVar string // "NOTIFY_SOCKET" when from the environment
	sys    *sysenv

	mu     sync.RWMutex // held for reading while a datagram is sent
	conn   *conn        // nil when disabled
	closed bool
}

// FromEnv returns a Client for the socket in NOTIFY_SOCKET. It does not
// unset the variable: later calls (watchdog pings) and anything else in the
// process keep working; UnsetEnv and WithoutEnv keep it from children.
//
// Without NOTIFY_SOCKET in the environment it returns a disabled Client and
// a nil error: every method is then a cheap no-op returning nil, and Enabled
// reports false. A NOTIFY_SOCKET that is set but empty, relative, too long
// or that nothing is bound to gives a nil Client (itself a no-op) and a
// *SocketError naming the variable and its value.
func FromEnv() (*Client, error) {
	return Config{}.FromEnv()
}

// FromEnv is FromEnv with this configuration.
func (cfg Config) FromEnv() (*Client, error) {
	return cfg.fromEnv(defaultSys)
}

func (cfg Config) fromEnv(sys *sysenv) (*Client, error) {
	socket, ok := sys.lookupEnv(EnvSocket)
	if !ok {
		return &Client{sys: sys}, nil
	}
	return cfg.dial(socket, EnvSocket, sys)
}

// Dial returns a Client for a manager socket: an absolute path
// ("/run/systemd/notify") or an abstract name ("@name"). It checks that a
// socket is bound at the address (by connecting a probe socket, which sends
// nothing), so a manager that is not there fails here with a *SocketError
// wrapping ENOENT or ECONNREFUSED; a manager that goes away later makes the
// sends fail the same way.
func Dial(socket string) (*Client, error) {
	return Config{}.Dial(socket)
}

// Dial is Dial with this configuration.
func (cfg Config) Dial(socket string) (*Client, error) {
	return cfg.dial(socket, "", defaultSys)
}

func (cfg Config) dial(socket, envVar string, sys *sysenv) (*Client, error) {
	name, err := parseSocket(socket)
	if err != nil {
		return nil, &SocketError{Var: envVar, Socket: socket, Op: "parse", Err: err}
	}
	timeout := cfg.SendTimeout
	if timeout <= 0 {
		timeout = DefaultSendTimeout
	}
	cn, err := dialConn(name, timeout)
	if err != nil {
		return nil, &SocketError{Var: envVar, Socket: socket, Op: "dial", Err: err}
	}
	return &Client{socket: socket, envVar: envVar, sys: sys, conn: cn}, nil
}

// Enabled reports whether the Client sends anything: false for a nil or
// disabled Client.
func (c *Client) Enabled() bool { return c != nil && c.conn != nil }

// Socket returns the socket address as given, "" when disabled.
func (c *Client) Socket() string {
	if c == nil {
		return ""
	}
	return c.socket
}

// Close releases the Client's socket. Sends after Close return ErrClosed.
// Close on a disabled Client, and a second Close, return nil.
func (c *Client) Close() error {
	if !c.Enabled() {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return c.conn.close()
}

// Ready sends READY=1: start-up (or a reload) is complete.
func (c *Client) Ready() error { return c.send("READY=1") }

// Reloading sends RELOADING=1 with MONOTONIC_USEC= set to the current
// CLOCK_MONOTONIC time in microseconds, as Type=notify-reload requires. The
// reload ends with Ready.
func (c *Client) Reloading() error {
	if !c.Enabled() {
		return nil
	}
	now, err := c.sys.monotonic()
	if err != nil {
		return fmt.Errorf("notify: read CLOCK_MONOTONIC: %w", err)
	}
	return c.send("RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(now.Microseconds(), 10))
}

// Stopping sends STOPPING=1: the service is shutting down. A generation
// that has handed over its main PID must not send it.
func (c *Client) Stopping() error { return c.send("STOPPING=1") }

// Status sends STATUS=s, a one-line status shown by systemctl status. A
// line break or NUL in s is ErrInvalid (it would start another key).
func (c *Client) Status(s string) error {
	if err := checkValue("STATUS", s); err != nil {
		return err
	}
	return c.send("STATUS=" + s)
}

// Errno sends ERRNO=n, the errno-style reason of a failure; n must be >= 0.
func (c *Client) Errno(n int) error {
	if n < 0 {
		return invalidf("ERRNO=%d is negative", n)
	}
	return c.send("ERRNO=" + strconv.Itoa(n))
}

// BusError sends BUSERROR=name, a D-Bus error name for a failure.
func (c *Client) BusError(name string) error {
	if err := checkValue("BUSERROR", name); err != nil {
		return err
	}
	return c.send("BUSERROR=" + name)
}

// MainPID sends MAINPID=pid: the manager is to supervise pid as the
// service's main process. To hand the service to a successor, use
// HandOver, which also says READY=1 in the same datagram.
func (c *Client) MainPID(pid int) error {
	if pid <= 0 {
		return invalidf("MAINPID=%d is not a pid", pid)
	}
	return c.send("MAINPID=" + strconv.Itoa(pid))
}

// HandOver sends "MAINPID=<pid>\nREADY=1" in one datagram: the calling
// process, the current main process, makes pid (its ready successor) the
// service's main process. This is the only form the manager accepts under
// NotifyAccess=main: the message must come from the current main PID, so the
// successor cannot claim MAINPID itself.
//
// After HandOver the calling process must say nothing more to the manager
// (no STOPPING, READY or RELOADING: they would now be about the
// successor's service, or be rejected), and it must call Barrier before it
// exits, so that the manager has read the message while the sender is still
// alive to be attributed.
//
// With a watchdog: stop this process's RunWatchdog (cancel and join it) and
// send one last Watchdog ping just before HandOver. The successor's own
// RunWatchdog (ClaimFromParent) pings from the moment it starts, but the
// manager drops its pings until the hand-over makes it the main process.
// With the last ping just before the hand-over, the successor's first
// accepted ping comes at most half the timeout after it.
func (c *Client) HandOver(pid int) error {
	if pid <= 0 {
		return invalidf("MAINPID=%d is not a pid", pid)
	}
	return c.send("MAINPID=" + strconv.Itoa(pid) + "\nREADY=1")
}

// Watchdog sends WATCHDOG=1, a keep-alive ping. RunWatchdog sends them on
// a timer.
func (c *Client) Watchdog() error { return c.send("WATCHDOG=1") }

// WatchdogTrigger sends WATCHDOG=trigger: the manager acts as if the
// watchdog timed out.
func (c *Client) WatchdogTrigger() error { return c.send("WATCHDOG=trigger") }

// SetWatchdogTimeout sends WATCHDOG_USEC=d in microseconds: it changes the
// service's watchdog timeout at run time. d must be at least 1µs.
func (c *Client) SetWatchdogTimeout(d time.Duration) error {
	if d < time.Microsecond {
		return invalidf("WATCHDOG_USEC: %v is less than 1µs", d)
	}
	return c.send("WATCHDOG_USEC=" + strconv.FormatInt(d.Microseconds(), 10))
}

// ExtendTimeout sends EXTEND_TIMEOUT_USEC=d in microseconds: the current
// start, stop or reload timeout is extended so that it ends no earlier than
// d from now. d must be at least 1µs.
func (c *Client) ExtendTimeout(d time.Duration) error {
	if d < time.Microsecond {
		return invalidf("EXTEND_TIMEOUT_USEC: %v is less than 1µs", d)
	}
	return c.send("EXTEND_TIMEOUT_USEC=" + strconv.FormatInt(d.Microseconds(), 10))
}

// FDStoreRemove sends FDSTOREREMOVE=1 with FDNAME=name: the manager closes
// and forgets every stored fd of that name. The name is checked as for
// FDStore and must not be empty.
func (c *Client) FDStoreRemove(name string) error {
	if name == "" {
		return invalidf("FDSTOREREMOVE needs an FDNAME")
	}
	if err := CheckFDName(name); err != nil {
		return err
	}
	return c.send("FDSTOREREMOVE=1\nFDNAME=" + name)
}

// Send sends state as one datagram, unchanged: newline-separated KEY=VALUE
// assignments. It must not be empty, must not contain a NUL byte and must
// be at most MaxMessageSize bytes (ErrTooLong: it is never truncated).
func (c *Client) Send(state string) error {
	if err := checkMessage(state); err != nil {
		return err
	}
	return c.send(state)
}

// SendFiles is Send with files attached as SCM_RIGHTS in the same datagram,
// at most MaxFDsPerMessage of them (FDStore batches for you). The files
// stay open in the caller; the manager gets its own copies.
func (c *Client) SendFiles(state string, files ...*os.File) error {
	if err := checkMessage(state); err != nil {
		return err
	}
	if len(files) > MaxFDsPerMessage {
		return invalidf("%d files in one message, the kernel carries at most %d", len(files), MaxFDsPerMessage)
	}
	fds, err := fileFDs(files)
	if err != nil {
		return err
	}
	defer runtime.KeepAlive(files)
	if !c.Enabled() {
		return nil
	}
	return c.sendmsg(state, fds)
}

func (c *Client) send(msg string) error {
	if !c.Enabled() {
		return nil
	}
	if len(msg) > MaxMessageSize {
		return fmt.Errorf("notify: %w: %d bytes, the limit is %d", ErrTooLong, len(msg), MaxMessageSize)
	}
	return c.sendmsg(msg, nil)
}

// sendmsg sends one datagram with fds attached, under the read lock that
// keeps Close from pulling the socket away.
func (c *Client) sendmsg(msg string, fds []int) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return &SocketError{Var: c.envVar, Socket: c.socket, Op: "send", Err: ErrClosed}
	}
	if err := c.conn.send([]byte(msg), fds); err != nil {
		return &SocketError{Var: c.envVar, Socket: c.socket, Op: "send", Err: err}
	}
	return nil
}

func checkMessage(state string) error {
	switch {
	case state == "":
		return invalidf("empty message")
	case strings.IndexByte(state, 0) >= 0:
		return invalidf("message contains a NUL byte")
	case len(state) > MaxMessageSize:
		return fmt.Errorf("notify: %w: %d bytes, the limit is %d", ErrTooLong, len(state), MaxMessageSize)
	}
	return nil
}

// checkValue rejects a value that would end its KEY=VALUE line early: the
// manager splits messages on '\n' (and '\r' before systemd 254).
func checkValue(key, v string) error {
	if i := strings.IndexAny(v, "\n\r\x00"); i >= 0 {
		return invalidf("%s value %q contains a line break or NUL at byte %d", key, v, i)
	}
	return nil
}

// CheckFDName reports whether name can be an FDNAME= (and so a
// LISTEN_FDNAMES entry): activation.CheckName's rule, at most MaxFDNameLen
// bytes of printable ASCII without ':'. The empty name is valid for
// FDStore (the manager calls such fds "stored").
func CheckFDName(name string) error {
	if name == "" {
		return nil
	}
	if err := activation.CheckName(name); err != nil {
		return fmt.Errorf("%w: FDNAME: %w", ErrInvalid, err)
	}
	return nil
}

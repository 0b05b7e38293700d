package notify

import (
	"errors"
	"fmt"
	"strconv"
)

// Sentinel errors, for errors.Is. Every error the package returns wraps one
// of them or a system error (syscall.Errno, context errors).
var (
	// ErrBadSocket: the socket address (NOTIFY_SOCKET or the argument of
	// Dial) is empty, relative, too long for sockaddr_un or of a kind this
	// package does not speak. The error is a *SocketError naming it.
	ErrBadSocket = errors.New("bad socket address")

	// ErrInvalid: a message, a value or an fd name that the protocol cannot
	// carry. Nothing was sent.
	ErrInvalid = errors.New("invalid message")

	// ErrTooLong: a message longer than MaxMessageSize. Nothing was sent.
	ErrTooLong = errors.New("message too long")

	// ErrClosed: the Client was closed.
	ErrClosed = errors.New("client closed")

	// ErrTimeout: the manager did not take the datagram within the send
	// timeout (its queue stayed full). Nothing was sent.
	ErrTimeout = errors.New("send timed out: the manager's queue stayed full")

	// ErrBadEnv: WATCHDOG_USEC or WATCHDOG_PID is malformed. The error is
	// an *EnvError naming the variable and its value.
	ErrBadEnv = errors.New("malformed variable")

	// ErrUnsupported: notifications are not available on this platform.
	ErrUnsupported = errors.New("notify: not supported on this platform")
)

// SocketError reports a problem with one notify socket: a bad address, a
// manager that is not there (ENOENT, ECONNREFUSED), a send that failed.
type SocketError struct {
	// Var is "NOTIFY_SOCKET" when the address came from the environment,
	// empty when it came from Dial.
	Var string
	// Socket is the address exactly as given ("/run/x", "@name").
	Socket string
	// Op is what was being done: "parse", "dial" or "send".
	Op string
	// Err is the cause (ErrBadSocket, a syscall.Errno, ErrTimeout...).
	Err error
}

func (e *SocketError) Error() string {
	name := "socket " + strconv.Quote(e.Socket)
	if e.Var != "" {
		name = e.Var + "=" + strconv.Quote(e.Socket)
	}
	return fmt.Sprintf("notify: %s %s: %v", e.Op, name, e.Err)
}

func (e *SocketError) Unwrap() error { return e.Err }

// EnvError reports a malformed environment variable.
type EnvError struct {
	Var, Value string
	Err        error // wraps ErrBadEnv
}

func (e *EnvError) Error() string {
	return fmt.Sprintf("notify: %s=%q: %v", e.Var, e.Value, e.Err)
}

func (e *EnvError) Unwrap() error { return e.Err }

// invalidf returns an error wrapping ErrInvalid.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("notify: %w: "+format, append([]any{ErrInvalid}, args...)...)
}

package notify

import (
	"errors"
	"time"

	"golang.org/x/sys/unix"
)

// conn is the Client's socket: an unbound, unconnected AF_UNIX datagram
// socket in blocking mode with SO_SNDTIMEO, so that a send waits for room in
// the manager's queue for a bounded time and then fails with EAGAIN. Each
// datagram is addressed (sendmsg with msg_name), as libsystemd does: a
// manager that re-binds its socket is found again.
type conn struct {
	fd      int
	name    string // for a fresh *unix.SockaddrUnix per send: it is not safe to share
	timeout time.Duration
}

func dialConn(name string, timeout time.Duration) (*conn, error) {
	sa := &unix.SockaddrUnix{Name: name}
	// The probe: connect(2) on a datagram socket sends nothing but fails
	// when nothing is bound at the address (ENOENT, ECONNREFUSED) or when
	// we may not write to it (EACCES).
	probe, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	err = ignoringEINTR(func() error { return unix.Connect(probe, sa) })
	_ = unix.Close(probe) // nothing was sent through it
	if err != nil {
		return nil, err
	}

	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	tv := unix.NsecToTimeval(timeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		_ = unix.Close(fd)
		return nil, err
	}
	return &conn{fd: fd, name: name, timeout: timeout}, nil
}

func (cn *conn) send(msg []byte, fds []int) error {
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	// A signal ends a send waiting under SO_SNDTIMEO with EINTR; retry,
	// but only until the timeout has passed once.
	deadline := time.Now().Add(cn.timeout)
	for {
		_, err := unix.SendmsgN(cn.fd, msg, oob, &unix.SockaddrUnix{Name: cn.name}, unix.MSG_NOSIGNAL)
		switch {
		case errors.Is(err, unix.EINTR) && time.Now().Before(deadline):
			continue
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
			return ErrTimeout
		}
		return err
	}
}

func (cn *conn) close() error { return unix.Close(cn.fd) }

func monotonicNow() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, err
	}
	return time.Duration(ts.Nano()), nil
}

func ignoringEINTR(fn func() error) error {
	for {
		err := fn()
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

//go:build linux

package front

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// maxUnixPath is the size of sockaddr_un's sun_path, its NUL included.
const maxUnixPath = len(unix.RawSockaddrUnix{}.Path)

// listenUnix makes a listening unix stream socket at path, in blocking
// mode as systemd hands sockets over (a Go CMD makes its copy
// non-blocking itself; baton never accepts on it).
func listenUnix(path string) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("bind %s: %w", path, err)
	}
	if err := unix.Listen(fd, unix.SOMAXCONN); err != nil {
		_ = unix.Close(fd)
		_ = os.Remove(path)
		return nil, os.NewSyscallError("listen", err)
	}
	return os.NewFile(uintptr(fd), "unix:"+path), nil
}

// hasPending reports whether a connection waits in the listening socket's
// accept queue: a listening socket polls readable then.
func hasPending(f *os.File) (bool, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return false, err
	}
	var n int
	var perr error
	if err := rc.Control(func(fd uintptr) {
		for {
			n, perr = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 0)
			if !errors.Is(perr, unix.EINTR) {
				return
			}
		}
	}); err != nil {
		return false, err
	}
	if perr != nil {
		return false, os.NewSyscallError("poll", perr)
	}
	return n > 0, nil
}

// checkStream returns ErrNotStream unless f is a listening stream socket.
func checkStream(f *os.File) error {
	if f == nil {
		return fmt.Errorf("no file: %w", ErrNotStream)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var typ, acc int
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		typ, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TYPE)
		if gerr == nil {
			acc, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
		}
	}); err != nil {
		return err
	}
	switch {
	case gerr != nil:
		return fmt.Errorf("%w: %w", ErrNotStream, os.NewSyscallError("getsockopt", gerr))
	case typ != unix.SOCK_STREAM:
		return fmt.Errorf("%w: a datagram socket (type %d)", ErrNotStream, typ)
	case acc == 0:
		return fmt.Errorf("%w: not listening", ErrNotStream)
	}
	return nil
}

// usable reports whether an idle connection to a CMD can carry a request:
// it is open, the CMD has not closed its end and has sent nothing unasked.
// It peeks without waiting.
func usable(c net.Conn) bool {
	if tc, ok := c.(*trackedConn); ok {
		c = tc.Conn
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	idle := false
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		for {
			_, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			if err == unix.EINTR {
				continue
			}
			idle = err == unix.EAGAIN // else EOF, data or an error
			return true
		}
	})
	return err == nil && idle
}

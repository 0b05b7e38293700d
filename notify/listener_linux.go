package notify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Listener is the manager's side of the protocol: a datagram socket with
// SO_PASSCRED that a supervisor (`baton run`, a test) names in its
// children's NOTIFY_SOCKET and reads messages from, with the sender's
// credentials and fds, as systemd does.
type Listener struct {
	socket string
	conn   *net.UnixConn
	unlink bool // a path we bound, removed by Close
}

// Listen binds a Listener at an absolute path, which must not exist yet and
// is removed by Close, or at an "@name" abstract address.
func Listen(socket string) (*Listener, error) {
	if _, err := parseSocket(socket); err != nil {
		return nil, &SocketError{Socket: socket, Op: "listen", Err: err}
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		return nil, &SocketError{Socket: socket, Op: "listen", Err: unwrapOp(err)}
	}
	l := &Listener{socket: socket, conn: conn, unlink: socket[0] == '/'}
	rc, err := conn.SyscallConn()
	if err == nil {
		cerr := rc.Control(func(fd uintptr) {
			err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
		})
		if err == nil {
			err = cerr
		}
	}
	if err != nil {
		_ = l.Close()
		return nil, &SocketError{Socket: socket, Op: "listen", Err: fmt.Errorf("SO_PASSCRED: %w", err)}
	}
	return l, nil
}

// Socket returns the address to put in NOTIFY_SOCKET.
func (l *Listener) Socket() string { return l.socket }

// Receive returns the next message. It waits until one arrives, ctx ends
// (ctx.Err() is returned itself) or the Listener is closed (net.ErrClosed).
// Call it from one goroutine at a time: ctx works through the socket's
// read deadline, which concurrent calls would share.
//
// A datagram that cannot be read whole is dropped, as the manager drops it,
// with its fds closed: Receive then returns an error wrapping ErrTooLong
// (message over MaxMessageSize bytes) or ErrInvalid (more fds than fit, no
// credentials), and the next Receive goes on with the next datagram.
func (l *Listener) Receive(ctx context.Context) (*Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := l.conn.SetReadDeadline(noDeadline); err != nil {
		return nil, fmt.Errorf("notify: receive: %w", err)
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		_ = l.conn.SetReadDeadline(aLongTimeAgo)
	})
	buf := make([]byte, MaxMessageSize+1)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred)+unix.CmsgSpace(4*MaxFDsPerMessage))
	n, oobn, flags, _, err := l.conn.ReadMsgUnix(buf, oob)
	if !stop() {
		<-fired
	}
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("notify: receive: %w", unwrapOp(err))
	}

	m := &Message{State: string(buf[:n])}
	var perr error
	cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		perr = invalidf("control data: %v", err)
	}
	creds := false
	for _, cm := range cmsgs {
		if cred, err := unix.ParseUnixCredentials(&cm); err == nil {
			m.PID, m.UID, m.GID, creds = int(cred.Pid), int(cred.Uid), int(cred.Gid), true
			continue
		}
		fds, err := unix.ParseUnixRights(&cm)
		if err != nil {
			continue // another kind of control message
		}
		for _, fd := range fds {
			m.Files = append(m.Files, os.NewFile(uintptr(fd), "notify-fd-"+strconv.Itoa(fd)))
		}
	}
	switch {
	case perr != nil:
	case flags&unix.MSG_TRUNC != 0 || n > MaxMessageSize:
		perr = fmt.Errorf("notify: %w: datagram from pid %d longer than %d bytes, dropped", ErrTooLong, m.PID, MaxMessageSize)
	case flags&unix.MSG_CTRUNC != 0:
		perr = invalidf("datagram from pid %d with more fds than %d, dropped", m.PID, MaxFDsPerMessage)
	case !creds:
		perr = invalidf("datagram without SCM_CREDENTIALS, dropped")
	}
	if perr != nil {
		_ = m.Close()
		return nil, perr
	}
	return m, nil
}

// Close closes the socket and removes the path Listen bound. A Receive in
// progress returns net.ErrClosed.
func (l *Listener) Close() error {
	err := l.conn.Close()
	if l.unlink {
		if rerr := os.Remove(l.socket); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
			err = rerr
		}
		l.unlink = false
	}
	if err != nil {
		return fmt.Errorf("notify: close listener %q: %w", l.socket, unwrapOp(err))
	}
	return nil
}

// unwrapOp drops a *net.OpError's own "op network addr" prefix: the
// *SocketError around it says the same.
func unwrapOp(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Err
	}
	return err
}

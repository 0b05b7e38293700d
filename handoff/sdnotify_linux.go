package handoff

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// sdNotifier speaks sd_notify(3) over one unixgram socket. The zero value
// (no socket) makes every call a no-op.
type sdNotifier struct {
	conn *net.UnixConn
}

func dialNotifier(socket string) (*sdNotifier, error) {
	if socket == "" {
		return &sdNotifier{}, nil
	}
	name := socket
	if name[0] == '@' {
		name = "\x00" + name[1:]
	} else if name[0] != '/' {
		return nil, fmt.Errorf("notify socket %q: not an absolute path or @abstract name", socket)
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("notify socket %q: %w", socket, err)
	}
	return &sdNotifier{conn: c}, nil
}

func (n *sdNotifier) Send(state string) error {
	if n.conn == nil {
		return nil
	}
	if _, err := n.conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

func (n *sdNotifier) Ready() error          { return n.Send("READY=1") }
func (n *sdNotifier) Stopping() error       { return n.Send("STOPPING=1") }
func (n *sdNotifier) Watchdog() error       { return n.Send("WATCHDOG=1") }
func (n *sdNotifier) Status(s string) error { return n.Send("STATUS=" + s) }
func (n *sdNotifier) HandOver(pid int) error {
	return n.Send("MAINPID=" + strconv.Itoa(pid) + "\nREADY=1")
}

func (n *sdNotifier) Reloading() error {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return fmt.Errorf("sd_notify: monotonic clock: %w", err)
	}
	return n.Send("RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(ts.Nano()/1000, 10))
}

func (n *sdNotifier) Barrier(ctx context.Context) error {
	if n.conn == nil {
		return nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("sd_notify barrier: %w", err)
	}
	defer r.Close()
	sc, err := w.SyscallConn()
	if err != nil {
		_ = w.Close()
		return fmt.Errorf("sd_notify barrier: %w", err)
	}
	// net refuses WriteMsgUnix on a connected datagram socket: sendmsg
	// on the raw fd.
	cc, err := n.conn.SyscallConn()
	if err != nil {
		_ = w.Close()
		return fmt.Errorf("sd_notify barrier: %w", err)
	}
	var werr error
	if err := sc.Control(func(pipe uintptr) {
		rights := unix.UnixRights(int(pipe))
		if err := cc.Write(func(fd uintptr) bool {
			werr = unix.Sendmsg(int(fd), []byte("BARRIER=1"), rights, nil, 0)
			return !errors.Is(werr, unix.EAGAIN)
		}); err != nil && werr == nil {
			werr = err
		}
	}); err != nil && werr == nil {
		werr = err
	}
	_ = w.Close()
	if werr != nil {
		return fmt.Errorf("sd_notify barrier: %w", werr)
	}
	stop := context.AfterFunc(ctx, func() { _ = r.SetReadDeadline(time.Now()) })
	defer stop()
	var buf [16]byte
	for {
		_, err := r.Read(buf[:])
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("sd_notify barrier: %w", err)
		}
	}
}

func (n *sdNotifier) Close() error {
	if n.conn == nil {
		return nil
	}
	return n.conn.Close()
}

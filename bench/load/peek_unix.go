//go:build unix

package load

import (
	"net"
	"syscall"
)

type peekResult int

const (
	peekNothing peekResult = iota // nothing to read yet
	peekEOF                       // the end of the stream (or an error)
	peekBytes                     // bytes wait
)

// peekSocket looks, without waiting or consuming, at what c's socket has
// to read.
func peekSocket(c net.Conn) peekResult {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return peekNothing
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return peekEOF
	}
	res := peekNothing
	_ = rc.Control(func(fd uintptr) {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EAGAIN || err == syscall.EINTR:
		case err != nil || n == 0:
			res = peekEOF
		default:
			res = peekBytes
		}
	})
	return res
}

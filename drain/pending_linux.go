package drain

import (
	"crypto/tls"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// pending reports whether bytes wait to be read on c (a request on its way
// in). It peeks without taking the connection's read lock.
func pending(c net.Conn) bool {
	has := false
	onSocket(c, func(fd int) {
		var b [1]byte
		n, _, err := unix.Recvfrom(fd, b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		has = err == nil && n > 0
	})
	return has
}

// receivedSlack covers the kernel's clock for the last data received: it
// counts jiffies (1 to 10 ms) and reports whole milliseconds.
const receivedSlack = 12 * time.Millisecond

// receivedSince reports whether the kernel received data on the TCP
// connection c later than since (unix nanoseconds) by more than
// receivedSlack: bytes that net/http may have read into its buffer while
// the connection still counts as idle. False for other connections.
func receivedSince(c net.Conn, since int64) bool {
	got := false
	onSocket(c, func(fd int) {
		info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
		if err != nil {
			return
		}
		last := time.Now().Add(-time.Duration(info.Last_data_recv) * time.Millisecond)
		got = last.UnixNano() > since+int64(receivedSlack)
	})
	return got
}

// onSocket runs f on c's socket (the one under TLS), if it has one.
func onSocket(c net.Conn, f func(fd int)) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) { f(int(fd)) })
}

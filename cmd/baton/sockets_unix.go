//go:build unix

package main

import (
	"net"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/handoff"
	"github.com/batonhq/baton/internal/supervisor"
)

// socketStatus names a socket baton run holds: its kind and address.
func socketStatus(s supervisor.Socket) handoff.SocketStatus {
	out := handoff.SocketStatus{Name: s.Name, Kind: "file"}
	rc, err := s.File.SyscallConn()
	if err != nil {
		return out
	}
	_ = rc.Control(func(fd uintptr) {
		sa, err := unix.Getsockname(int(fd))
		if err != nil {
			return
		}
		typ, _ := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TYPE)
		port := func(p int) string { return strconv.Itoa(p) }
		switch sa := sa.(type) {
		case *unix.SockaddrInet4:
			out.Kind, out.Addr = "tcp", net.JoinHostPort(net.IP(sa.Addr[:]).String(), port(sa.Port))
		case *unix.SockaddrInet6:
			out.Kind, out.Addr = "tcp", net.JoinHostPort(net.IP(sa.Addr[:]).String(), port(sa.Port))
		case *unix.SockaddrUnix:
			out.Kind, out.Addr = "unix", sa.Name
		}
		switch {
		case typ == unix.SOCK_DGRAM && out.Kind == "tcp":
			out.Kind = "udp"
		case typ == unix.SOCK_DGRAM && out.Kind == "unix":
			out.Kind = "unixgram"
		case typ == unix.SOCK_SEQPACKET && out.Kind == "unix":
			out.Kind = "unixpacket"
		}
	})
	return out
}

package testproc

import (
	"net"
	"os"
	"testing"
)

// ListenerFile binds a TCP listener on a free loopback port, as a manager
// would before starting a socket-activated service, and returns its file
// (to pass at fd 3) and address. The listener itself is closed: the file
// keeps the socket, and the caller closes the file once the service has
// its copy, so that connections are refused, not queued, once no service
// holds the socket any more.
func ListenerFile(t testing.TB) (*os.File, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	_ = ln.Close()
	if err != nil {
		t.Fatal(err)
	}
	return f, ln.Addr().String()
}

// PacketFile is ListenerFile for a UDP socket.
func PacketFile(t testing.TB) (*os.File, string) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := pc.(*net.UDPConn).File()
	_ = pc.Close()
	if err != nil {
		t.Fatal(err)
	}
	return f, pc.LocalAddr().String()
}

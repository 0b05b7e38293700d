package activation

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Kind is what an inherited fd is.
type Kind uint8

// The kinds of fd a socket unit (or an fd store) can pass.
const (
	KindOther         Kind = iota // anything else: a regular file, a device, an eventfd, a raw socket...
	KindTCP                       // AF_INET/AF_INET6 SOCK_STREAM, TCP or MPTCP
	KindUDP                       // AF_INET/AF_INET6 SOCK_DGRAM, UDP
	KindUnixStream                // AF_UNIX SOCK_STREAM
	KindUnixDatagram              // AF_UNIX SOCK_DGRAM
	KindUnixSeqpacket             // AF_UNIX SOCK_SEQPACKET
	KindFIFO                      // a named pipe (ListenFIFO=)
	KindNetlink                   // AF_NETLINK (ListenNetlink=)
	KindMqueue                    // a POSIX message queue (ListenMessageQueue=)
)

var kindNames = [...]string{
	KindOther:         "other",
	KindTCP:           "tcp",
	KindUDP:           "udp",
	KindUnixStream:    "unix",
	KindUnixDatagram:  "unixgram",
	KindUnixSeqpacket: "unixpacket",
	KindFIFO:          "fifo",
	KindNetlink:       "netlink",
	KindMqueue:        "mqueue",
}

// String returns the kind's name; for sockets it is the Go network name
// ("tcp", "udp", "unix", "unixgram", "unixpacket").
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// stream reports whether the kind can listen and accept.
func (k Kind) stream() bool {
	return k == KindTCP || k == KindUnixStream || k == KindUnixSeqpacket
}

// File is one inherited fd.
type File struct {
	Name      string   // from LISTEN_FDNAMES; NameUnknown when it is not set
	Aliases   []string // other names the fd came with: those of closed duplicates
	FD        int      // the inherited fd number, 3 and up
	Kind      Kind     // what the fd is
	Listening bool     // a stream or seqpacket socket in the listening state
	Addr      net.Addr // the local address of a socket, or nil
	File      *os.File // the fd; owned by the Set until taken
}

// String describes the fd, e.g. `fd 3 "http" tcp listener 127.0.0.1:8080`.
func (f File) String() string {
	return fmt.Sprintf("fd %d %s %s", f.FD, f.names(), f.describe())
}

// names quotes the name and the aliases, e.g. `"http" (also "stored")`.
func (f File) names() string {
	s := strconv.Quote(f.Name)
	if len(f.Aliases) > 0 {
		q := make([]string, len(f.Aliases))
		for i, a := range f.Aliases {
			q[i] = strconv.Quote(a)
		}
		s += " (also " + strings.Join(q, ", ") + ")"
	}
	return s
}

// named reports whether name is the fd's name or one of its aliases.
func (f File) named(name string) bool {
	return f.Name == name || slices.Contains(f.Aliases, name)
}

// describe is the kind, state and address, e.g. "tcp listener 127.0.0.1:80".
func (f File) describe() string {
	s := f.Kind.String()
	if f.Listening {
		s += " listener"
	} else if f.Kind.stream() {
		s += " connection"
	}
	if f.Addr != nil {
		if a := f.Addr.String(); a != "" {
			s += " " + a
		}
	}
	return s
}

// NetlinkAddr is the local address of a netlink socket.
type NetlinkAddr struct {
	Protocol int    // NETLINK_ROUTE, ... (the socket's SO_PROTOCOL)
	PortID   uint32 // nl_pid
	Groups   uint32 // nl_groups
}

// Network returns "netlink".
func (a *NetlinkAddr) Network() string { return "netlink" }

func (a *NetlinkAddr) String() string {
	return fmt.Sprintf("protocol=%d portid=%d groups=%#x", a.Protocol, a.PortID, a.Groups)
}

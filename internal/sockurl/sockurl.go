package sockurl

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// MaxUnixPath is the longest unix socket path sockaddr_un holds, without the
// terminating NUL.
const MaxUnixPath = 107

// ErrSyntax is matched (errors.Is) by every parse error.
var ErrSyntax = errors.New("invalid socket address")

// Error is a parse error; it names the value and the reason.
type Error struct {
	Value  string
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("socket address %q: %s", e.Value, e.Reason) }

// Unwrap returns ErrSyntax.
func (e *Error) Unwrap() error { return ErrSyntax }

// Addr is a parsed socket address.
type Addr struct {
	Network string // "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6" or "unix"
	Address string // host:port, or the unix path ("@name" for abstract)
}

// Stream reports whether the address is a stream (connection) socket.
func (a Addr) Stream() bool { return strings.HasPrefix(a.Network, "tcp") || a.Network == "unix" }

// String formats the address in the form Parse accepts.
func (a Addr) String() string {
	if a.Network == "unix" {
		return "unix:" + a.Address
	}
	return a.Network + "://" + a.Address
}

// Parse parses tcp://, tcp4://, tcp6://, udp://, udp4://, udp6:// and unix:
// addresses.
func Parse(s string) (Addr, error) {
	scheme, rest, ok := strings.Cut(s, ":")
	if !ok {
		return Addr{}, &Error{s, "want tcp://HOST:PORT, udp://HOST:PORT or unix:/PATH"}
	}
	switch scheme {
	case "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6":
		hostport, ok := strings.CutPrefix(rest, "//")
		if !ok {
			return Addr{}, &Error{s, "want " + scheme + "://HOST:PORT"}
		}
		if err := checkHostPort(hostport); err != nil {
			return Addr{}, &Error{s, err.Error()}
		}
		return Addr{Network: scheme, Address: hostport}, nil
	case "unix":
		path := strings.TrimPrefix(rest, "//")
		if err := checkUnix(path); err != nil {
			return Addr{}, &Error{s, err.Error()}
		}
		return Addr{Network: "unix", Address: path}, nil
	}
	return Addr{}, &Error{s, fmt.Sprintf("unknown scheme %q (want tcp, tcp4, tcp6, udp, udp4, udp6 or unix)", scheme)}
}

func checkHostPort(hostport string) error {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return errors.New("want HOST:PORT (an IPv6 host in brackets)")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q out of range 1-65535", port)
	}
	if host == "" {
		return nil
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return fmt.Errorf("host %q is not an IP address (systemd binds before any name lookup)", host)
	}
	return nil
}

func checkUnix(path string) error {
	switch {
	case path == "" || path == "@":
		return errors.New("empty unix socket path")
	case len(path) > MaxUnixPath:
		return fmt.Errorf("unix socket path is %d bytes, longer than %d", len(path), MaxUnixPath)
	case strings.ContainsRune(path, 0):
		return errors.New("unix socket path contains a NUL byte")
	case path[0] != '/' && path[0] != '@':
		return errors.New("unix socket path is not absolute")
	}
	return nil
}

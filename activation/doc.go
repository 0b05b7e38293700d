// Package activation receives the sockets a service manager passes to a
// process, exactly as sd_listen_fds(3) defines it: systemd's socket
// activation, its fd store, systemd-socket-activate, and a previous
// generation of the same server handing its sockets over (package handoff)
// all speak this protocol.
//
// # Model
//
// A process is started with fds 3 .. 3+n-1 open and three variables:
// LISTEN_PID (the pid they are for), LISTEN_FDS (n) and LISTEN_FDNAMES
// (n names joined by ':'). Receive reads and unsets the variables, checks
// every fd, sets close-on-exec on each, classifies it (TCP, UDP, unix
// stream, datagram or seqpacket, FIFO, netlink, message queue, other; its
// local address; whether it listens), drops fd-store duplicates, and
// returns a Set. Lookups take fds out of the Set by name, in the shapes of
// the net package:
//
//	set, err := activation.Receive()
//	if errors.Is(err, activation.ErrNotActivated) {
//		ln, err = net.Listen("tcp", ":8080") // started by hand
//	} else if err != nil {
//		return err
//	} else {
//		defer set.Close() // closes what was not taken
//		ln, err = set.Listener("http")
//	}
//
// Ownership: the Set owns every fd until a lookup takes it. Listener,
// PacketConn and Conn (and their plurals) return net values that work on a
// duplicate made by the net package; the inherited fd is closed at once, so
// the returned value has another fd number. File and Take hand over the
// *os.File itself. Set.Close closes only what is left. Nothing in this
// package ever calls shutdown(2) on a socket or unlinks a unix socket path:
// a unix listener it returns has SetUnlinkOnClose(false).
//
// # Unit files
//
// Name every socket, and look it up by that name:
//
//	# web.socket
//	[Socket]
//	ListenStream=0.0.0.0:80
//	ListenStream=/run/web/admin.sock
//	FileDescriptorName=http
//	Service=web.service
//
//	# web-dns.socket
//	[Socket]
//	ListenDatagram=127.0.0.1:53
//	FileDescriptorName=dns
//	Service=web.service
//
//	# web.service
//	[Service]
//	ExecStart=/usr/local/bin/web
//	Sockets=web.socket web-dns.socket
//
// Both fds of web.socket are named "http": set.Listeners("http") returns
// the two of them; set.PacketConn("dns") the UDP socket. With Accept=yes
// each connection starts a service instance with one connected socket
// named "connection": set.Conn(activation.NameConnection).
//
// # Errors
//
// Not being activated is not an error: Receive returns an error matching
// ErrNotActivated. A malformed variable is an *EnvError naming the variable
// and its value (LISTEN_FDS="abc", "0", "-1", too large, fds not open,
// LISTEN_FDNAMES with the wrong count, a name over 255 bytes or with a
// control character). A failing system call is an *FDError. A lookup that
// misses is a *LookupError matching ErrNoSocket (or ErrAmbiguous when one
// was wanted and several match) and lists what the Set holds. On any error
// Receive returns no Set and has wrapped or closed no fd.
//
// # Traps
//
//   - The order of fds across socket units is undefined (both "http:admin"
//     and "admin:http" happen): match by name, never by position. Several
//     fds may share a name: all fds of one socket unit do.
//   - Fd-store entries follow the socket-unit fds and can be copies of them
//     (LISTEN_FDNAMES=admin:http:http:admin after a restart with FDSTORE=1).
//     Receive keeps the first fd of each socket and closes the copies; it
//     compares device, inode and access mode, and never merges anonymous
//     inodes (eventfds and the like), which all share one inode.
//   - Never shutdown(2) an inherited socket: the socket unit, a sibling
//     process or the next generation still uses it. Never unlink an
//     inherited unix socket's path: the socket unit owns it. A unix listener
//     a process creates itself needs SetUnlinkOnClose(false) before it is
//     handed over.
//   - The variables are unset by Receive before it returns, on every path:
//     call it before starting any process, so that a child does not mistake
//     them for its own (LISTEN_PID guards that only as long as pids are not
//     reused).
//   - Call Receive early, before opening files: it trusts LISTEN_FDS once
//     LISTEN_PID matches, and fds 3 .. 3+n-1 are then taken to be the
//     inherited ones.
//   - The net values returned by lookups do not have the inherited fd
//     numbers. To pass a socket on, use its File method, or keep the
//     *os.File from Take.
//   - Only Linux receives fds; elsewhere Receive says ErrNotActivated or
//     errors.ErrUnsupported.
//
// # Compared with go-systemd
//
// github.com/coreos/go-systemd/v22/activation gives the same fds and names
// for every input both accept. It accepts more: a LISTEN_FDNAMES whose count
// differs from LISTEN_FDS, fds that are not open, LISTEN_FDS="+2"; it names
// fds without a name "LISTEN_FD_<fd>" where libsystemd and this package say
// "unknown" (or keep the empty name); it does not drop fd-store duplicates;
// its ListenersWithNames also returns connected TCP sockets and unix
// datagram sockets as listeners.
package activation

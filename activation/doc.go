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
// (n names joined by ':'); systemd 258 and later add a fourth,
// LISTEN_PIDFDID (the inode number of a pidfd of that process, which
// unlike a pid is never reused). Receive reads and unsets the variables, checks
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
//	ListenStream=/run/web/http.sock
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
// Not being activated is not a failure: Receive returns an error matching
// ErrNotActivated (LISTEN_PID unset or another process's, LISTEN_PIDFDID
// another process's pidfd, or LISTEN_FDS unset) and the program opens its
// own sockets. A malformed variable is an
// *EnvError naming the variable and its value: LISTEN_PID, LISTEN_PIDFDID
// or LISTEN_FDS that is not plain decimal (letters, blanks, '+', "0x", a leading zero),
// out of range, zero or negative; fds that are not open or lie past the fd
// table, or that this process opened itself after exec (a LISTEN_FDS
// larger than what was passed reaches the Go runtime's own files: since Go
// 1.25 it keeps cgroup CPU files open at the lowest free fds; they are
// close-on-exec, which no fd that came through exec can be, and live on a
// cgroup file system); LISTEN_FDNAMES with the wrong count, a name over 255 bytes, a name
// with a control character or a non-ASCII byte. A failing system call is an
// *FDError. On any error Receive returns a nil Set and has wrapped or
// closed no fd (close-on-exec may have been set on some when a later check
// failed): with variables
// that cannot be trusted, fds 3 and up may not be inherited ones. A lookup
// that misses is a *LookupError matching ErrNoSocket (or ErrAmbiguous when
// one was wanted and several match), listing what the Set holds.
//
// CheckName is the rule for a name a process sends (FileDescriptorName=,
// FDNAME=, a successor's LISTEN_FDNAMES): 1 to 255 bytes of printable ASCII
// without ':'. handoff, units and `baton run` check names with it.
//
// # Traps
//
//   - The order of fds across socket units is undefined (both "http:admin"
//     and "admin:http" happen): match by name, never by position. Several
//     fds may share a name: all fds of one socket unit do.
//   - Fd-store entries follow the socket-unit fds and can be copies of them
//     (LISTEN_FDNAMES=admin:http:http:admin after a restart with FDSTORE=1).
//     Receive keeps the first fd of each file and closes the copies; a
//     copy's other name (say "stored") becomes an alias of the kept fd, and
//     lookups find it under either. Copies are recognised by device, inode
//     and access mode; anonymous inodes (eventfds and the like) all share
//     one inode and are never merged, nor are the two ends of a pipe.
//   - Never shutdown(2) an inherited socket: the socket unit, a sibling
//     process or the next generation still uses it. Never unlink an
//     inherited unix socket's path: the socket unit owns it. A unix listener
//     a process creates itself needs SetUnlinkOnClose(false) before it is
//     handed over.
//   - Receive unsets the variables before it returns, on every path. Call
//     it before starting any process, so that no child mistakes them for
//     its own (LISTEN_PID guards that only as long as pids are not reused).
//   - Call Receive early, before opening files: once LISTEN_PID matches it
//     trusts LISTEN_FDS, and takes fds 3 .. 3+n-1 to be the inherited ones.
//   - The net values returned by lookups do not have the inherited fd
//     numbers. To pass a socket on, use its File method, or keep the
//     *os.File from File or Take.
//   - systemd's Accept=yes names the connection "connection";
//     systemd-socket-activate --accept (252) names it after --fdname, or
//     leaves it "unknown".
//   - LISTEN_PIDFDID is compared only where the kernel has pidfs (Linux
//     6.9 and later): below, every pidfd shares one anonymous inode, and
//     the value is parsed but not compared, as libsystemd does. A process
//     that passes sockets on must set it for the receiver or leave it
//     unset, never forward its own (internal/spawn does this for handoff
//     and `baton run`).
//   - Only Linux receives fds; elsewhere Receive says ErrNotActivated or
//     errors.ErrUnsupported.
//
// # Compared with libsystemd and go-systemd
//
// The tests run libsystemd's sd_listen_fds_with_names (the machine's, and
// that of a Debian release with systemd 258 or later for LISTEN_PIDFDID)
// and github.com/coreos/go-systemd/v22/activation side by side with Receive.
// Every input libsystemd refuses, Receive refuses; where all accept, the
// fds and names agree. Receive is stricter than libsystemd in two ways:
// numbers must be plain decimal (libsystemd's strtol takes " 1", "+1",
// "0x1", and reads "010" as 8 where go-systemd reads 10; LISTEN_PIDFDID=0
// names no process and is refused), and names must be
// valid fd names (libsystemd hands out any; systemd never sets an invalid
// one).
//
// go-systemd differs more:
//   - it ignores LISTEN_PIDFDID (and leaves it set);
//   - it accepts a LISTEN_FDNAMES whose count is not LISTEN_FDS, and never
//     checks that the fds are open;
//   - it names an fd without a name "LISTEN_FD_<fd>" (libsystemd and
//     Receive: "unknown" when LISTEN_FDNAMES is unset, else the empty name);
//   - it does not drop fd-store copies;
//   - its ListenersWithNames also returns connected TCP and unix sockets and
//     unix datagram sockets, as listeners;
//   - an unparsable LISTEN_PID or LISTEN_FDS, or LISTEN_FDS=0, is "not
//     activated" to it, an error to libsystemd and Receive.
package activation

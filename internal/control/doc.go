// Package control is the request channel between `baton reload` and a running
// baton process (a handoff-enabled server or `baton run`): the client asks for
// an upgrade and waits for its outcome, so that ExecReload= is synchronous and
// `systemctl reload` fails when the upgrade fails.
//
// The server listens on an abstract unix socket named
// "@baton/control/<128 random bits>", one per process. Nobody can bind it
// in advance (a name derived from the pid could be, and a service then
// could not start). A client finds it from the target's own fds: the
// socket inodes behind /proc/PID/fd, looked up in /proc/PID/net/unix,
// which lists the sockets of the target's network namespace with their
// names. Reading another process's fds takes its uid or root, the same
// rule as the server's. A caller that may not read them but shares the
// target's network namespace (ExecReload= of the hardened units, whose
// user namespace differs from the main process's under PrivateUsers=yes,
// with ProtectProc=invisible hiding it) dials the control sockets /proc
// lists in its own namespace and keeps the one whose listening pid
// (SO_PEERCRED) is the target, sending nothing to the others. A pid is asked as the caller sees it, so a client
// in the host's pid namespace reaches a container's server by its host
// pid, and `baton reload --pid $MAINPID` reaches whichever generation is
// the main process now.
//
// An abstract socket needs no writable directory and belongs to a network
// namespace: ExecReload= shares the service's, even under
// PrivateNetwork=yes. A client in another namespace (a shell beside a
// service with PrivateNetwork=yes, a container) enters the target's for
// the dial (setns on a thread that returns at once; root only); without
// the right to, it gets a *NamespaceError naming the namespace.
//
// Abstract sockets have no file permissions and anyone who reads the name
// (/proc/net/unix lists it) may connect, so both ends check the other
// with SO_PEERCRED: the server serves only its own effective uid and
// root, and the client talks only to a socket whose listening process is
// the pid it asked for (a *StrangerError otherwise, with nothing sent).
// One server per process (ErrAlreadyOpen).
//
// The protocol is one JSON request line and one JSON reply line per
// connection. The server serves one request at a time per connection and any
// number of connections at once; whether a second upgrade may start while one
// is in flight is the handler's decision (it returns ErrInProgress).
//
// A "reload" request may carry "wait_window": true, asking for the answer
// at the end of the new generation's watch window rather than at the
// cut-over; a rollback in the window is answered CodeRolledBack
// ("rolled-back", ErrRolledBack, which wraps ErrFailed) with the reason.
// Both ends stay compatible with peers that do not know the field: an old
// server ignores it and answers at the cut-over, and an old client never
// sends it. A Handler reads the request with RequestOf(ctx).
//
// An upgrade abandoned because the process is stopping (SIGTERM, Stop: a
// `systemctl stop` during `systemctl reload`) is answered CodeStopping, the
// sentinel ErrStopping: the stop superseded the reload and nothing failed,
// so `baton reload` exits 0 for it and the unit stops cleanly. A server that
// exits before it answers leaves the client ErrNoReply.
//
// Traps:
//   - A server is found through the fds of its process: a successor
//     generation opens its own after it starts (the listener is
//     close-on-exec), and the predecessor's closes with it. A socket passed
//     to another process would be found there too, and refused by the
//     SO_PEERCRED check.
//   - A client that gives up (timeout, Ctrl-C) does not cancel the upgrade: it
//     goes on and its outcome is logged by the server's owner.
package control

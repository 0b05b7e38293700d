// Package control is the request channel between `baton reload` and a running
// baton process (a handoff-enabled server or `baton run`): the client asks for
// an upgrade and waits for its outcome, so that ExecReload= is synchronous and
// `systemctl reload` fails when the upgrade fails.
//
// The server listens on the abstract unix socket
// "@baton/control/<pid namespace inode>/<pid>", one per process, so `baton
// reload --pid $MAINPID` reaches whichever generation is the main process
// now. An abstract socket needs no writable directory and lives in the
// network namespace, which ExecReload= shares with the service even under
// PrivateNetwork=yes. The pid namespace is in the name because a network
// namespace can hold several pid namespaces (the containers of a Kubernetes
// pod, each with its own pid 1): the client reads the target's namespace
// and its pid there from /proc/<pid>/ns/pid and NSpid, so a client in the
// host's namespace reaches a container's server by its host pid.
//
// Abstract sockets have no file permissions and anyone may bind a free
// name, so both ends check the other with SO_PEERCRED: the server serves
// only its own effective uid and root, and the client talks only to a
// socket whose listening process is the pid it asked for (a *StrangerError
// otherwise, with nothing sent). A server whose name is taken fails to
// Listen; its owner reports that as an error, not a warning.
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
//   - The socket's name is keyed by pid: a successor generation must open its
//     own server after it starts; the predecessor's closes with it.
//   - A client that gives up (timeout, Ctrl-C) does not cancel the upgrade: it
//     goes on and its outcome is logged by the server's owner.
package control

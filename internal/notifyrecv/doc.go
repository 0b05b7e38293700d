// Package notifyrecv is the receiving side of sd_notify(3): a unix datagram
// socket that a supervisor hands to its children as NOTIFY_SOCKET, and that
// tells, for every message, which process sent it.
//
// The model: one socket per supervisor, many senders. SO_PASSCRED is set on
// the socket, so the kernel attaches the sender's pid, uid and gid to every
// datagram whether or not the sender asked for it; the supervisor matches the
// pid against the processes it started and ignores the rest (a stale
// generation, a grandchild, a stranger in the same network namespace). This
// is what systemd's NotifyAccess=main does.
//
// The default address is abstract ("@baton/notify/<pid>/<random>"): no
// directory is needed and nothing is left behind; the random part keeps two
// supervisors that are both PID 1 of their own pid namespaces apart when they
// share a network namespace.
//
// Unit file: nothing to configure; a `baton run` under systemd keeps its own
// NOTIFY_SOCKET and gives its children this one:
//
//	[Service]
//	Type=notify
//	ExecStart=/usr/bin/baton run --listen http=tcp://127.0.0.1:8080 -- /usr/bin/myserver
//
// NOTES
//   - File descriptors sent with a message (FDSTORE=1) are closed on receipt:
//     a supervisor that wants an fd store must ask for them explicitly.
//   - The pid is the sender's pid in the receiver's pid namespace; a sender
//     in a namespace the receiver cannot see arrives as pid 0.
//   - Messages are at most 4096 bytes; longer ones are truncated by the
//     kernel and rejected here.
package notifyrecv

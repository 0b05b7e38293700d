// Package spawn starts a process the way systemd (258 and later) starts a
// socket-activated service: the given files at fds 3, 4, ... in order,
// LISTEN_FDS and LISTEN_FDNAMES describing them, LISTEN_PID equal to the
// new process's own pid and LISTEN_PIDFDID to the inode number of its own
// pidfd when its code starts running, so sd_listen_fds(3) (libsystemd of
// any version) and go-systemd's activation package in that process accept
// the fds. Nothing else leaks into the child: stdin, stdout and stderr are
// what the caller gives (or /dev/null), fds 3.. are exactly Files then
// Extra.
//
// # The variables, and when they are set
//
// Every process that baton starts with sockets (handoff's successors,
// `baton run`'s CMDs and pool workers) is started here, and sees:
//
//	LISTEN_FDS=n            the count of Files, at fds 3 .. 3+n-1
//	LISTEN_FDNAMES=a:b:...  one name per file, when Names is set
//	LISTEN_PID=pid          its own pid, set before its code runs (below)
//	LISTEN_PIDFDID=ino      its own pidfs inode number, set with LISTEN_PID,
//	                        only where the kernel has pidfs (Linux 6.9+)
//
// Whatever of these the caller's environment (Config.Env) holds is
// dropped first: a process started by systemd 258+ has LISTEN_PIDFDID of
// its own, which names the wrong process in any child (libsystemd 258+ in
// the child would refuse the sockets). Without Files none of them is set.
// The parent cannot know the child's pid or pidfd before fork, so both
// are set in the child, by the trampoline or the target's init (SelfFix),
// as described next.
//
// # LISTEN_PID
//
// A parent cannot set the environment of a child after fork, and the child's
// pid is only known after fork. Two ways around it:
//
//   - Trampoline (the zero Mode, works for any program: C with libsystemd,
//     go-systemd, anything): the child first runs /proc/self/exe (the
//     calling binary, which imports this package) with a marker variable;
//     this package's init sees the marker, removes it, sets
//     LISTEN_PID=getpid() (and LISTEN_PIDFDID) and execve(2)s the real
//     target, which keeps the pid and the pidfs inode. Cost: one more
//     execve and one Go runtime start-up of the calling binary.
//   - SelfFix: the child is the target itself with LISTEN_PID set to a
//     placeholder (the parent's pid, so a child that does not fix it simply
//     sees "not activated") and a marker naming the parent; the target must
//     import this package (handoff does), whose init replaces the
//     placeholder with getpid() before main runs. Cost: nothing measurable.
//
// Measured on the shared 2-core development box, start to "child main
// running" (BenchmarkStart, this package's test binary as the target,
// -count 8): SelfFix 2.6-3.8 ms (median 3.1), Trampoline 4.9-7.6 ms (median
// 5.4). The trampoline costs one more execve and Go runtime start-up of the
// calling binary, about 2.3 ms, roughly doubling the floor. handoff uses
// SelfFix for its successors (they are the same program, so they import
// this package); Trampoline is for a foreign CMD (`baton run`), where it is
// the only way.
//
// The marker is never acted on by accident: it is removed from the
// environment before anything else runs, and it is honoured only when it
// names the process's parent (getppid), or the process that created the
// anchor socket given in the marker (SO_PEERCRED), which stays true even
// when the parent has died in the meantime.
//
// # Traps
//
//   - Files are passed by duplicating their descriptors, never through
//     (*os.File).Fd: Fd switches a socket made by the net package to
//     blocking mode, which changes the open file description shared with
//     the caller's own listener (its Accept would then block a thread and
//     ignore Close).
//   - The fds keep their O_NONBLOCK flag (it belongs to the open file
//     description, shared with the caller). A child that wants blocking
//     sockets clears it itself.
//   - With NewProcessGroup the child's group is set between fork and exec,
//     before Start returns, so kill(-pid, sig) right after Start reaches it.
//     A child in a group of its own is a background group of the caller's
//     terminal: with `stty tostop` its writes to the terminal stop it.
//   - Only binaries that import this package can act as trampolines, and
//     only targets that import it can use SelfFix.
package spawn

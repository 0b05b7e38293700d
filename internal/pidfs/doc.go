// Package pidfs names a process by the inode number of a pidfd for it,
// the identity systemd 258 and later pass in LISTEN_PIDFDID beside
// LISTEN_PID: a pid is reused once its process is reaped, a pidfs inode
// number never is (while the machine runs).
//
// # Model
//
// Since Linux 6.9 every pidfd of a process refers to one inode of the pidfs
// file system, so fstat(2) of any of them gives the same st_ino, and a
// process can learn its own by pidfd_open(getpid()). Before 6.9 pidfds are
// anonymous inodes that all share one inode number: they identify nothing,
// and ID reports false, as libsystemd's pidfd_get_inode_id does
// (-EOPNOTSUPP). Before 5.3 there is no pidfd_open at all.
//
//	id, ok := pidfs.Self()
//	if ok {
//		env = append(env, "LISTEN_PIDFDID="+strconv.FormatUint(id, 10))
//	}
//
// # Traps
//
//   - The id of a child can only be learned once it exists, and its
//     environment is fixed at exec: the process that receives the sockets
//     (after fork, before or at exec) sets LISTEN_PIDFDID itself, as
//     systemd's forked child does. internal/spawn does it in its init.
//   - A check of LISTEN_PIDFDID must be skipped, not failed, when Self
//     reports false: a kernel without pidfs (or a seccomp filter that
//     refuses pidfd_open) cannot tell.
package pidfs

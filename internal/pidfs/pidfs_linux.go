package pidfs

import (
	"os"

	"golang.org/x/sys/unix"
)

// Magic is PIDFS_MAGIC, the f_type of pidfs.
const Magic = 0x50494446

// Self returns the pidfs inode number of this process; see ID.
func Self() (uint64, bool) { return ID(os.Getpid()) }

// ID returns the pidfs inode number of process pid, and false when the
// kernel cannot give one that identifies it: no pidfd_open (before Linux
// 5.3, or refused by seccomp), no such process, or a pidfd on the shared
// anonymous inode (before Linux 6.9).
func ID(pid int) (uint64, bool) {
	// pidfd_open sets close-on-exec itself: the fd never reaches a child.
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return 0, false
	}
	defer unix.Close(fd)
	return OfFD(fd)
}

// OfFD returns the pidfs inode number of the pidfd fd, false when fd is not
// on pidfs.
func OfFD(fd int) (uint64, bool) {
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil || sfs.Type != Magic {
		return 0, false
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, false
	}
	return st.Ino, true
}

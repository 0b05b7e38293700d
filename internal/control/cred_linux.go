package control

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// peerCred returns the credentials of c's peer: for a connection a client
// made, those of the process that created the listening socket, with its
// pid as seen from this process's pid namespace (0 when it is not visible
// from here).
func peerCred(c *net.UnixConn) (*unix.Ucred, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	if credErr != nil {
		return nil, fmt.Errorf("peer credentials: %w", credErr)
	}
	return cred, nil
}

// allowed admits root and the server's own effective uid.
func allowed(c *net.UnixConn) error {
	cred, err := peerCred(c)
	if err != nil {
		return err
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Geteuid() {
		return fmt.Errorf("uid %d may not control a process of uid %d", cred.Uid, os.Geteuid())
	}
	return nil
}

// answeredBy checks that the process listening behind c is pid (as this
// process sees pids): a socket name can be bound by anyone first.
func answeredBy(c *net.UnixConn, pid int) error {
	cred, err := peerCred(c)
	if err != nil {
		return err
	}
	if int(cred.Pid) != pid {
		return &StrangerError{PID: pid, Peer: int(cred.Pid), UID: cred.Uid}
	}
	return nil
}

// ownAddress is the name this process listens on: its pid namespace and
// its pid in it.
func ownAddress() (string, error) {
	ns, err := pidNamespace("/proc/self/ns/pid")
	if err != nil {
		return "", err
	}
	return address(ns, os.Getpid()), nil
}

// addressOf is the name process pid (as this process sees pids) listens
// on: its pid namespace and its pid there, read from /proc. When /proc
// does not say (no /proc, a process hidden by ProtectProc=invisible or
// hidepid, a namespace link we may not read), the process is taken to be
// in our own namespace; a process that does not exist is ErrNoServer.
func addressOf(pid int) (string, error) {
	if err := unix.Kill(pid, 0); errors.Is(err, unix.ESRCH) {
		return "", fmt.Errorf("pid %d: %w (no such process)", pid, ErrNoServer)
	}
	ns, err := pidNamespace("/proc/" + strconv.Itoa(pid) + "/ns/pid")
	if err != nil {
		own, oerr := ownAddress()
		if oerr != nil {
			return "", oerr
		}
		return own[:strings.LastIndexByte(own, '/')+1] + strconv.Itoa(pid), nil
	}
	inner, err := innermostPID(pid)
	if err != nil {
		inner = pid
	}
	return address(ns, inner), nil
}

// pidNamespace identifies the pid namespace behind an ns link by its inode.
func pidNamespace(link string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(link, &st); err != nil {
		return 0, &os.PathError{Op: "stat", Path: link, Err: err}
	}
	return st.Ino, nil
}

// innermostPID is pid's number in its own pid namespace: the last field
// of NSpid in /proc/<pid>/status (the first is ours).
func innermostPID(pid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				return strconv.Atoi(f[len(f)-1])
			}
		}
	}
	return pid, nil // a kernel without NSpid (before 4.1): one namespace
}

func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

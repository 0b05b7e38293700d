package control

import (
	"errors"
	"fmt"
	"net"
	"os"
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

func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

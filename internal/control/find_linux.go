package control

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// randomName is 26 base32 characters from 128 bits of the kernel's
// random generator, read with getrandom(2): in a process that starts
// (a successor about to say READY), crypto/rand's first call sets up its
// state first, which costs tens of microseconds more. It falls back on
// crypto/rand.
func randomName() string {
	var b [16]byte
	if n, err := unix.Getrandom(b[:], 0); err != nil || n != len(b) {
		return rand.Text()
	}
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])
}

// listen binds a listening socket under a fresh random name. A name in use
// cannot have been guessed: it is taken by chance, and another is tried.
func listen() (*net.UnixListener, error) {
	for i := 0; ; i++ {
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: prefix + randomName(), Net: "unix"})
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || i == 2 {
			return ln, err
		}
	}
}

// dial connects to the control socket of process pid (as this process
// sees pids), entering its network namespace for the dial when it is not
// ours.
func dial(ctx context.Context, pid int) (*net.UnixConn, error) {
	name, err := find(pid)
	if errors.Is(err, errHidden) {
		return dialByPeer(ctx, pid, err)
	}
	if err != nil {
		return nil, err
	}
	ns, same, err := netNamespace(pid)
	if err != nil {
		return nil, fmt.Errorf("pid %d: %w", pid, err)
	}
	var nc net.Conn
	if same {
		var d net.Dialer
		nc, err = d.DialContext(ctx, "unix", name)
	} else {
		nc, err = dialIn(ctx, pid, ns, name)
	}
	var nse *NamespaceError
	switch {
	case errors.As(err, &nse):
		return nil, err
	case errors.Is(err, os.ErrNotExist) || isRefused(err):
		// Closed since find read it: the process is exiting.
		return nil, fmt.Errorf("pid %d: %w (it closed its control socket)", pid, ErrNoServer)
	case err != nil:
		return nil, fmt.Errorf("pid %d: %w", pid, err)
	}
	return nc.(*net.UnixConn), nil
}

// errHidden is a process whose /proc entries this one may not read.
var errHidden = errors.New("its /proc entries are hidden from this process")

// dialByPeer finds pid's server among the control sockets of this
// process's network namespace by the pid that listens behind each
// (SO_PEERCRED; nothing is sent to the others): for a caller that may not
// read the target's fds but shares its namespace, as ExecReload= does
// under ProtectProc=invisible with a user namespace of its own
// (PrivateUsers=yes). hidden is why the fds could not be read.
func dialByPeer(ctx context.Context, pid int, hidden error) (*net.UnixConn, error) {
	f, err := os.Open("/proc/self/net/unix")
	if err != nil {
		return nil, fmt.Errorf("pid %d: %w", pid, err)
	}
	names, err := listening(f, nil)
	_ = f.Close()
	if err != nil {
		return nil, fmt.Errorf("pid %d: /proc/self/net/unix: %w", pid, err)
	}
	for _, name := range names {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "unix", name)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("pid %d: %w", pid, ctx.Err())
			}
			continue // closed meanwhile
		}
		c := nc.(*net.UnixConn)
		if cred, err := peerCred(c); err == nil && int(cred.Pid) == pid {
			return c, nil
		}
		_ = c.Close()
	}
	return nil, fmt.Errorf("pid %d: %w (none in this network namespace; %w)", pid, ErrNoServer, hidden)
}

// find returns the name of the control socket process pid listens on: a
// listening unix socket named prefix+… among the sockets it holds (the
// inodes behind /proc/PID/fd), as /proc/PID/net/unix lists the sockets
// of its network namespace. Reading another process's fds takes its uid
// or root (ptrace's read access), as controlling it does. A process that
// exists but whose fds are hidden or denied is errHidden.
func find(pid int) (string, error) {
	if err := unix.Kill(pid, 0); errors.Is(err, unix.ESRCH) {
		return "", fmt.Errorf("pid %d: %w (no such process)", pid, ErrNoServer)
	}
	dir := "/proc/" + strconv.Itoa(pid)
	inodes, err := socketInodes(dir + "/fd")
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission):
		// The process exists (kill said so), or existed: /proc hides it
		// (ProtectProc=invisible, hidepid) or denies its fds.
		return "", fmt.Errorf("%w: %w", errHidden, err)
	case err != nil:
		return "", fmt.Errorf("pid %d: %w", pid, err)
	}
	f, err := os.Open(dir + "/net/unix")
	if err != nil {
		return "", fmt.Errorf("pid %d: %w", pid, err)
	}
	defer f.Close()
	names, err := listening(f, inodes)
	switch {
	case err != nil:
		return "", fmt.Errorf("pid %d: %s: %w", pid, f.Name(), err)
	case len(names) == 0:
		return "", fmt.Errorf("pid %d: %w (is it a baton process?)", pid, ErrNoServer)
	case len(names) > 1:
		return "", fmt.Errorf("pid %d: %d control sockets (%s): not choosing", pid, len(names), strings.Join(names, ", "))
	}
	return names[0], nil
}

// socketInodes returns the inodes of the sockets open in the fd directory
// dir (/proc/PID/fd). An fd closed while it is read is skipped.
func socketInodes(dir string) (map[uint64]bool, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	inodes := make(map[uint64]bool)
	for _, e := range entries {
		link, err := os.Readlink(dir + "/" + e.Name())
		if err != nil {
			continue
		}
		if s, ok := strings.CutPrefix(link, "socket:["); ok {
			if ino, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64); err == nil {
				inodes[ino] = true
			}
		}
	}
	return inodes, nil
}

// acceptCon is __SO_ACCEPTCON in the Flags column of /proc/net/unix: the
// socket listens.
const acceptCon = 1 << 16

// listening returns the names of the listening control sockets in the
// table r (/proc/PID/net/unix) whose inode is in inodes (nil: all):
//
//	Num       RefCount Protocol Flags    Type St Inode Path
//	ffff...: 00000002 00000000 00010000 0001 01 41872 @baton/control/…
func listening(r io.Reader, inodes map[uint64]bool) ([]string, error) {
	var names []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 8 || !strings.HasPrefix(f[7], prefix) {
			continue
		}
		flags, err := strconv.ParseUint(f[3], 16, 32)
		if err != nil || flags&acceptCon == 0 {
			continue
		}
		if ino, err := strconv.ParseUint(f[6], 10, 64); err == nil && (inodes == nil || inodes[ino]) {
			names = append(names, f[7])
		}
	}
	return names, sc.Err()
}

// netNamespace returns process pid's network namespace as its link reads
// ("net:[4026532301]"), and whether it is this process's.
func netNamespace(pid int) (ns string, same bool, err error) {
	link := "/proc/" + strconv.Itoa(pid) + "/ns/net"
	var own, its unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &own); err != nil {
		return "", false, &os.PathError{Op: "stat", Path: "/proc/thread-self/ns/net", Err: err}
	}
	if err := unix.Stat(link, &its); err != nil {
		return "", false, &os.PathError{Op: "stat", Path: link, Err: err}
	}
	ns, err = os.Readlink(link)
	if err != nil {
		ns = "net:[" + strconv.FormatUint(its.Ino, 10) + "]"
	}
	return ns, own.Dev == its.Dev && own.Ino == its.Ino, nil
}

// dialIn dials name in process pid's network namespace ns: an abstract
// unix name is looked up in the namespace the socket was created in, so
// the socket is created on a thread that entered it (setns, which takes
// CAP_SYS_ADMIN there: root) and returns to ours before it runs anything
// else. Once created, the socket is used from any thread. A thread that
// cannot return stays locked to its goroutine, which ends: the runtime
// ends the thread with it (or parks it for good, the main thread).
func dialIn(ctx context.Context, pid int, ns, name string) (net.Conn, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/ns/net")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	type result struct {
		c   net.Conn
		err error
	}
	res := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			res <- result{err: err}
			return
		}
		defer own.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread() // unchanged
			res <- result{err: &NamespaceError{PID: pid, NetNS: ns, Err: os.NewSyscallError("setns", err)}}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", name)
		if rerr := unix.Setns(int(own.Fd()), unix.CLONE_NEWNET); rerr == nil {
			runtime.UnlockOSThread()
		}
		res <- result{c, err}
	}()
	r := <-res
	return r.c, r.err
}

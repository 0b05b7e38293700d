package spawn

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/internal/pidfs"
)

func init() {
	// Runs in every binary that imports this package, before main.
	strays := os.Getenv(EnvStrays)
	_ = os.Unsetenv(EnvStrays)
	if v, ok := os.LookupEnv(EnvExec); ok {
		_ = os.Unsetenv(EnvExec)
		if m, ok := parseMarker(v, true); ok && ours(m.ppid, m.anchor) {
			closeStrays(3+m.keep, strays)
			trampoline(m.path)
		}
	}
	if v, ok := os.LookupEnv(EnvFix); ok {
		_ = os.Unsetenv(EnvFix)
		if m, ok := parseMarker(v, false); ok && ours(m.ppid, m.anchor) {
			closeStrays(3+m.keep, strays)
			if os.Getenv("LISTEN_PID") == strconv.Itoa(m.ppid) {
				setListenPID()
			}
		}
	}
}

// closeStrays closes the fds, from first on, that the parent listed as
// leaked to this process by accident (EnvStrays) and that still are those
// files and not close-on-exec. Nothing else: an fd this process opened
// before its init ran (cgo or LD_PRELOAD code) is its own.
func closeStrays(first int, list string) {
	for _, e := range strings.Split(list, ",") {
		f := strings.Split(e, "/")
		if len(f) != 3 {
			continue
		}
		fd, err1 := strconv.Atoi(f[0])
		dev, err2 := strconv.ParseUint(f[1], 10, 64)
		ino, err3 := strconv.ParseUint(f[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || fd < first {
			continue
		}
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil || st.Dev != dev || st.Ino != ino {
			continue
		}
		if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && fl&unix.FD_CLOEXEC == 0 {
			_ = unix.Close(fd)
		}
	}
}

// leaked lists, as EnvStrays does, this process's fds from first on that
// are not close-on-exec: a child started with first fds gets them too.
// It asks fcntl of every fd number below the fd table's size rather than
// reading /proc/self/fd: a server holding 18,000 connections has as many
// entries there, and listing them took most of its successor's start
// (16 to 25 ms at 18,000 fds here; the fcntl calls take 4 to 7 ms).
func leaked(first int) string {
	size := fdTableSize()
	if size < 0 {
		return leakedFromProc(first)
	}
	var out []string
	for fd := first; fd < size; fd++ {
		if s := stray(fd); s != "" {
			out = append(out, s)
		}
	}
	return strings.Join(out, ",")
}

// stray is the EnvStrays entry of fd when it is open and not
// close-on-exec, "" otherwise.
func stray(fd int) string {
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil || fl&unix.FD_CLOEXEC != 0 {
		return ""
	}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return ""
	}
	return strconv.Itoa(fd) + "/" + strconv.FormatUint(st.Dev, 10) + "/" + strconv.FormatUint(st.Ino, 10)
}

// fdTableSize is FDSize from /proc/self/status: every open fd is below
// it. -1 when unknown.
func fdTableSize() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "FDSize:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n <= 0 {
				return -1
			}
			return n
		}
	}
	return -1
}

// leakedFromProc is leaked by the entries of /proc/self/fd.
func leakedFromProc(first int) string {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return ""
	}
	names, _ := d.Readdirnames(-1)
	self := int(d.Fd())
	var out []string
	for _, n := range names {
		fd, err := strconv.Atoi(n)
		if err != nil || fd < first || fd == self {
			continue
		}
		if s := stray(fd); s != "" {
			out = append(out, s)
		}
	}
	_ = d.Close()
	return strings.Join(out, ",")
}

// ours reports whether the marker was meant for this process: its parent is
// ppid, or the anchor socket was created by ppid.
func ours(ppid, anchor int) bool {
	if unix.Getppid() == ppid {
		return true
	}
	if anchor < 0 {
		return false
	}
	cred, err := unix.GetsockoptUcred(anchor, unix.SOL_SOCKET, unix.SO_PEERCRED)
	return err == nil && int(cred.Pid) == ppid
}

// setListenPID names this process as the one the fds are for, as systemd
// names a service it starts: LISTEN_PID, and LISTEN_PIDFDID where the
// kernel has pidfs (a receiver that follows libsystemd 258+ refuses fds
// whose LISTEN_PIDFDID is another process's; one that predates it ignores
// the variable). The parent never sets LISTEN_PIDFDID (it cannot know the
// child's), so without pidfs it stays unset.
func setListenPID() {
	_ = os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	if id, ok := pidfs.Self(); ok {
		_ = os.Setenv("LISTEN_PIDFDID", strconv.FormatUint(id, 10))
	}
}

// trampoline sets LISTEN_PID and replaces the process with path. It only
// returns on an exec error, which it reports like a shell and exits 127.
func trampoline(path string) {
	if _, ok := os.LookupEnv("LISTEN_FDS"); ok {
		// execve keeps the pid and the pidfs inode: both are the
		// target's.
		setListenPID()
	}
	err := unix.Exec(path, os.Args, os.Environ())
	fmt.Fprintf(os.Stderr, "spawn: exec %s: %v\n", path, err)
	os.Exit(127)
}

// Start starts the process described by c and returns it. The caller must
// Wait for it.
func Start(c *Config) (*os.Process, error) {
	if c.Path == "" || len(c.Args) == 0 {
		return nil, fmt.Errorf("spawn: Path and Args are required")
	}
	env, err := c.env(os.Getpid())
	if err != nil {
		return nil, err
	}
	var fds []uintptr
	defer func() {
		for _, fd := range fds {
			_ = unix.Close(int(fd))
		}
	}()
	for _, f := range []*os.File{c.Stdin, c.Stdout, c.Stderr} {
		if f == nil {
			fd, err := unix.Open(os.DevNull, unix.O_RDWR|unix.O_CLOEXEC, 0)
			if err != nil {
				return nil, fmt.Errorf("spawn: open %s: %w", os.DevNull, err)
			}
			fds = append(fds, uintptr(fd))
			continue
		}
		fd, err := dup(f)
		if err != nil {
			return nil, err
		}
		fds = append(fds, uintptr(fd))
	}
	for _, f := range append(c.Files[:len(c.Files):len(c.Files)], c.Extra...) {
		fd, err := dup(f)
		if err != nil {
			return nil, err
		}
		fds = append(fds, uintptr(fd))
	}
	path := c.Path
	if c.Mode == Trampoline {
		path = "/proc/self/exe"
	}
	if strays := leaked(len(fds)); strays != "" {
		env = append(env, EnvStrays+"="+strays)
	}
	attr := &syscall.ProcAttr{Dir: c.Dir, Env: env, Files: fds, Sys: &syscall.SysProcAttr{Setpgid: c.NewProcessGroup}}
	pid, _, err := syscall.StartProcess(path, c.Args, attr)
	if err != nil {
		return nil, fmt.Errorf("spawn: start %s: %w", c.Path, err)
	}
	p, err := os.FindProcess(pid)
	if err != nil { // cannot happen on Linux
		return nil, fmt.Errorf("spawn: find pid %d: %w", pid, err)
	}
	return p, nil
}

// dup returns a CLOEXEC duplicate of f's descriptor without touching its
// blocking mode (see the package traps).
func dup(f *os.File) (int, error) {
	sc, err := f.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("spawn: %s: %w", f.Name(), err)
	}
	nfd := -1
	var derr error
	if err := sc.Control(func(fd uintptr) {
		nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 3)
	}); err != nil {
		return -1, fmt.Errorf("spawn: %s: %w", f.Name(), err)
	}
	if derr != nil {
		return -1, fmt.Errorf("spawn: dup %s: %w", f.Name(), derr)
	}
	return nfd, nil
}

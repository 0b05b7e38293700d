package handoff

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// entry is one named fd this generation holds and passes on.
type entry struct {
	name string
	file *os.File // owned by the Upgrader; passed to successors
	kind int      // unix.SOCK_STREAM, SOCK_DGRAM, ... or 0 for a non-socket
	lstn bool     // a listening socket
	used bool     // handed to the program by Listen, ListenPacket or File
}

// fdSet is the ordered set of named fds of a generation.
type fdSet struct {
	mu      sync.Mutex
	entries []*entry
}

// receive takes the fds of LISTEN_FDS when LISTEN_PID is this process, as
// sd_listen_fds(3) does, and unsets the variables either way.
func receive() (*fdSet, error) {
	s := &fdSet{}
	pid, hasPID := os.LookupEnv("LISTEN_PID")
	nfds, hasFDs := os.LookupEnv("LISTEN_FDS")
	names, hasNames := os.LookupEnv("LISTEN_FDNAMES")
	for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		_ = os.Unsetenv(k)
	}
	if !hasPID || !hasFDs || pid != strconv.Itoa(os.Getpid()) {
		return s, nil
	}
	n, err := strconv.Atoi(nfds)
	if err != nil || n < 0 || n > 1<<16 {
		return nil, fmt.Errorf("LISTEN_FDS=%q: %w", nfds, ErrBadEnvironment)
	}
	var list []string
	if hasNames {
		list = strings.Split(names, ":")
		if len(list) != n {
			return nil, fmt.Errorf("LISTEN_FDNAMES=%q has %d names for LISTEN_FDS=%d: %w", names, len(list), n, ErrBadEnvironment)
		}
	}
	for i := range n {
		fd := 3 + i
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
			s.close()
			return nil, fmt.Errorf("inherited fd %d: %w", fd, err)
		}
		name := "unknown"
		if list != nil {
			name = list[i]
		}
		e := &entry{name: name, file: os.NewFile(uintptr(fd), name)}
		e.kind, e.lstn = classify(fd)
		s.entries = append(s.entries, e)
	}
	return s, nil
}

func classify(fd int) (kind int, listening bool) {
	t, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return 0, false
	}
	acc, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	return t, acc == 1
}

// take returns the first unused entry named name that match accepts.
func (s *fdSet) take(name string, match func(*entry) bool) *entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.entries {
		if !e.used && e.name == name && match(e) {
			e.used = true
			return e
		}
	}
	return nil
}

func (s *fdSet) add(e *entry) {
	s.mu.Lock()
	e.used = true
	s.entries = append(s.entries, e)
	s.mu.Unlock()
}

// all returns the files and names to pass to a successor, in order.
func (s *fdSet) all() ([]*os.File, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	files := make([]*os.File, len(s.entries))
	names := make([]string, len(s.entries))
	for i, e := range s.entries {
		files[i], names[i] = e.file, e.name
	}
	return files, names
}

func (s *fdSet) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.entries {
		_ = e.file.Close()
	}
	s.entries = nil
}

// listen returns a listener for name: inherited, or bound fresh.
func (s *fdSet) listen(name, network, addr string) (net.Listener, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if e := s.take(name, func(e *entry) bool { return e.lstn && e.kind != unix.SOCK_DGRAM }); e != nil {
		ln, err := net.FileListener(e.file)
		if err != nil {
			return nil, fmt.Errorf("inherited socket %q: %w", name, err)
		}
		if ul, ok := ln.(*net.UnixListener); ok {
			ul.SetUnlinkOnClose(false)
		}
		return ln, nil
	}
	ln, err := listenFresh(network, addr)
	if err != nil {
		return nil, err
	}
	f, err := ln.(interface{ File() (*os.File, error) }).File()
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("socket %q: %w", name, err)
	}
	s.add(&entry{name: name, file: f, kind: unix.SOCK_STREAM, lstn: true})
	return ln, nil
}

func listenFresh(network, addr string) (net.Listener, error) {
	ln, err := net.Listen(network, addr)
	if err != nil && (network == "unix" || network == "unixpacket") && errors.Is(err, syscall.EADDRINUSE) {
		// A path left by a process that is gone: nobody answers on it.
		if c, derr := net.Dial(network, addr); derr == nil {
			_ = c.Close()
		} else if errors.Is(derr, syscall.ECONNREFUSED) {
			_ = os.Remove(addr)
			ln, err = net.Listen(network, addr)
		}
	}
	if err != nil {
		return nil, err
	}
	if ul, ok := ln.(*net.UnixListener); ok {
		// Neither this generation nor a later one removes the path: the
		// successor serves on it.
		ul.SetUnlinkOnClose(false)
	}
	return ln, nil
}

func (s *fdSet) listenPacket(name, network, addr string) (net.PacketConn, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if e := s.take(name, func(e *entry) bool { return e.kind == unix.SOCK_DGRAM }); e != nil {
		pc, err := net.FilePacketConn(e.file)
		if err != nil {
			return nil, fmt.Errorf("inherited socket %q: %w", name, err)
		}
		return pc, nil
	}
	pc, err := net.ListenPacket(network, addr)
	if err != nil {
		return nil, err
	}
	f, err := pc.(interface{ File() (*os.File, error) }).File()
	if err != nil {
		_ = pc.Close()
		return nil, fmt.Errorf("socket %q: %w", name, err)
	}
	s.add(&entry{name: name, file: f, kind: unix.SOCK_DGRAM})
	return pc, nil
}

func (s *fdSet) file(name string, open func() (*os.File, error)) (*os.File, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if e := s.take(name, func(*entry) bool { return true }); e != nil {
		fd, err := unix.FcntlInt(e.file.Fd(), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			return nil, fmt.Errorf("inherited file %q: %w", name, err)
		}
		return os.NewFile(uintptr(fd), name), nil
	}
	f, err := open()
	if err != nil {
		return nil, err
	}
	sc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("file %q: %w", name, err)
	}
	nfd := -1
	var derr error
	if err := sc.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 3) }); err != nil {
		derr = err
	}
	if derr != nil {
		return nil, fmt.Errorf("file %q: %w", name, derr)
	}
	kind, lstn := classify(nfd)
	s.add(&entry{name: name, file: os.NewFile(uintptr(nfd), name), kind: kind, lstn: lstn})
	return f, nil
}

func checkName(name string) error {
	if name == "" || len(name) > 255 || strings.ContainsAny(name, ":\n") {
		return fmt.Errorf("socket name %q: %w", name, ErrBadName)
	}
	return nil
}

package handoff

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/batonhq/baton/activation"
	"golang.org/x/sys/unix"
)

// entry is one named fd this generation holds and passes on.
type entry struct {
	name string
	file *os.File // owned by the Upgrader; passed to successors
	kind int      // unix.SOCK_STREAM, SOCK_DGRAM, ... or 0 for a non-socket
	lstn bool     // a listening socket
	used bool     // handed to the program by Listen, ListenPacket or File
	// fresh: opened by this process (not inherited), so the manager's fd
	// store does not hold it yet; stored: sent to the fd store.
	fresh, stored bool
	// bound: opened by a generation (this one, or a predecessor that said
	// so), not by the manager: the program's address decides, and one
	// the program no longer uses is not passed on.
	bound bool
	// replaces: the fd store holds an earlier socket of this name that
	// this one replaced; it is removed before this one is stored.
	replaces bool
}

// fdSet is the ordered set of named fds of a generation.
type fdSet struct {
	mu      sync.Mutex
	entries []*entry
	// dropped are the entries dropUnused took out: not passed on, but
	// kept open for a while (closeDropped) so that a Listen after Ready
	// takes its socket back instead of binding an address the
	// predecessor still holds (EADDRINUSE while it drains).
	dropped []*entry
}

// receive takes this process's fds from the manager or the predecessor
// (activation.Receive: sd_listen_fds semantics, variables unset either
// way), all of them, in fd order.
func receive() (*fdSet, error) {
	s := &fdSet{}
	set, err := activation.Receive()
	if errors.Is(err, activation.ErrNotActivated) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadEnvironment, err)
	}
	defer set.Close()
	var files []activation.File
	for _, name := range set.Names() {
		fs, err := set.Take(name)
		if err != nil && !errors.Is(err, activation.ErrNoSocket) {
			for _, f := range files {
				_ = f.File.Close()
			}
			return nil, err
		}
		files = append(files, fs...)
	}
	slices.SortFunc(files, func(a, b activation.File) int { return a.FD - b.FD })
	for _, f := range files {
		e := &entry{name: f.Name, file: f.File, lstn: f.Listening}
		switch f.Kind {
		case activation.KindTCP, activation.KindUnixStream:
			e.kind = unix.SOCK_STREAM
		case activation.KindUnixSeqpacket:
			e.kind = unix.SOCK_SEQPACKET
		case activation.KindUDP, activation.KindUnixDatagram:
			e.kind = unix.SOCK_DGRAM
		}
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

// add records a file this process opened itself.
func (s *fdSet) add(e *entry) {
	s.mu.Lock()
	e.used, e.fresh, e.bound = true, true, true
	s.entries = append(s.entries, e)
	s.mu.Unlock()
}

// markBound marks the entries at the given positions (fd - 3) as opened by
// a generation, as the predecessor said (envBound).
func (s *fdSet) markBound(positions []int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, i := range positions {
		if i < 0 || i >= len(s.entries) {
			return fmt.Errorf("%s: position %d of %d fds", envBound, i, len(s.entries))
		}
		s.entries[i].bound = true
	}
	return nil
}

// boundPositions is envBound's value for a successor given all().
func (s *fdSet) boundPositions() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ps []string
	for i, e := range s.entries {
		if e.bound {
			ps = append(ps, strconv.Itoa(i))
		}
	}
	return strings.Join(ps, ",")
}

// dropUnused takes out the sockets and files that a generation opened and
// this one did not take: they are not passed on. It returns their names.
// The manager's stay: they are the socket units'. They are kept open
// until closeDropped, for a late Listen (listen).
func (s *fdSet) dropUnused() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var dropped []string
	kept := s.entries[:0]
	for _, e := range s.entries {
		if e.bound && !e.used {
			s.dropped = append(s.dropped, e)
			dropped = append(dropped, e.name)
			continue
		}
		kept = append(kept, e)
	}
	clear(s.entries[len(kept):])
	s.entries = kept
	return dropped
}

// closeDropped closes what dropUnused took out and no Listen took back.
func (s *fdSet) closeDropped() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.dropped {
		_ = e.file.Close()
	}
	s.dropped = nil
}

// takeDropped takes back a dropped entry named name that match accepts
// and that is bound to network and addr, and passes it on again.
func (s *fdSet) takeDropped(name, network, addr string, match func(*entry) bool) *entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, e := range s.dropped {
		if e.name == name && match(e) && sameAddr(e.file, network, addr) {
			s.dropped = append(s.dropped[:i], s.dropped[i+1:]...)
			e.used = true
			s.entries = append(s.entries, e)
			return e
		}
	}
	return nil
}

// inherited returns the first unused inherited entry named name that match
// accepts, without taking it.
func (s *fdSet) inherited(name string, match func(*entry) bool) *entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.entries {
		if !e.used && e.name == name && match(e) {
			return e
		}
	}
	return nil
}

// sameAddr reports whether the socket f is bound to what network and addr
// ask for: the same path, or the same IP (any, when addr has none) and
// port (any, when addr says 0). It says yes when it cannot tell.
func sameAddr(f *os.File, network, addr string) bool {
	sa, err := sockname(f)
	if err != nil {
		return true
	}
	switch sa := sa.(type) {
	case *unix.SockaddrUnix:
		return sa.Name == addr
	case *unix.SockaddrInet4:
		return sameIPPort(network, addr, sa.Addr[:], sa.Port)
	case *unix.SockaddrInet6:
		return sameIPPort(network, addr, sa.Addr[:], sa.Port)
	}
	return true
}

func sameIPPort(network, addr string, ip []byte, port int) bool {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return true
	}
	want, err := net.DefaultResolver.LookupPort(context.Background(), network, p)
	if err != nil {
		return true
	}
	if want != 0 && want != port {
		return false
	}
	have := net.IP(ip)
	if host == "" {
		return have.IsUnspecified()
	}
	wantIP := net.ParseIP(host)
	if wantIP == nil {
		ips, err := net.DefaultResolver.LookupIP(context.Background(), "ip", host)
		if err != nil {
			return true
		}
		return slices.ContainsFunc(ips, have.Equal)
	}
	return wantIP.Equal(have)
}

// changed reports, for Listen and ListenPacket, an inherited socket named
// name that a generation bound to another address than the one asked for:
// this generation binds its own and leaves that one behind.
func (s *fdSet) changed(name, network, addr string, match func(*entry) bool) (old string, ok bool) {
	e := s.inherited(name, match)
	if e == nil || !e.bound || sameAddr(e.file, network, addr) {
		return "", false
	}
	if sa, err := sockname(e.file); err == nil {
		return sockaddrString(sa), true
	}
	return "?", true
}

func sockaddrString(sa unix.Sockaddr) string {
	switch sa := sa.(type) {
	case *unix.SockaddrUnix:
		return sa.Name
	case *unix.SockaddrInet4:
		return net.JoinHostPort(net.IP(sa.Addr[:]).String(), strconv.Itoa(sa.Port))
	case *unix.SockaddrInet6:
		return net.JoinHostPort(net.IP(sa.Addr[:]).String(), strconv.Itoa(sa.Port))
	}
	return "?"
}

// unstored returns the entries opened by this process that the manager's
// fd store does not hold yet, and marks them stored.
func (s *fdSet) unstored() []*entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var es []*entry
	for _, e := range s.entries {
		if e.fresh && !e.stored {
			e.stored = true
			es = append(es, e)
		}
	}
	return es
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
	for _, e := range s.dropped {
		_ = e.file.Close()
	}
	s.entries, s.dropped = nil, nil
}

// listen returns a listener for name: inherited, or bound fresh.
func (s *fdSet) listen(name, network, addr string) (net.Listener, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	match := func(e *entry) bool { return e.lstn && e.kind != unix.SOCK_DGRAM }
	if old, ok := s.changed(name, network, addr, match); ok {
		ln, err := listenFresh(network, addr)
		if err != nil {
			return nil, fmt.Errorf("socket %q moves from %s to %s: %w", name, old, addr, err)
		}
		return ln, s.addListener(name, ln, true)
	}
	e := s.take(name, match)
	if e == nil {
		// Dropped at Ready (this generation had not taken it then), and
		// bound still by the predecessor: taken back.
		e = s.takeDropped(name, network, addr, match)
	}
	if e != nil {
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
	return ln, s.addListener(name, ln, false)
}

// addListener records a listener this process bound (replaces: in place
// of an inherited one of that name).
func (s *fdSet) addListener(name string, ln net.Listener, replaces bool) error {
	f, err := ln.(interface{ File() (*os.File, error) }).File()
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("socket %q: %w", name, err)
	}
	s.add(&entry{name: name, file: f, kind: unix.SOCK_STREAM, lstn: true, replaces: replaces})
	return nil
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
	match := func(e *entry) bool { return e.kind == unix.SOCK_DGRAM }
	old, replaces := s.changed(name, network, addr, match)
	if !replaces {
		if e := s.take(name, match); e != nil {
			pc, err := net.FilePacketConn(e.file)
			if err != nil {
				return nil, fmt.Errorf("inherited socket %q: %w", name, err)
			}
			return pc, nil
		}
	}
	pc, err := net.ListenPacket(network, addr)
	if err != nil {
		if replaces {
			return nil, fmt.Errorf("socket %q moves from %s to %s: %w", name, old, addr, err)
		}
		return nil, err
	}
	f, err := pc.(interface{ File() (*os.File, error) }).File()
	if err != nil {
		_ = pc.Close()
		return nil, fmt.Errorf("socket %q: %w", name, err)
	}
	s.add(&entry{name: name, file: f, kind: unix.SOCK_DGRAM, replaces: replaces})
	return pc, nil
}

func (s *fdSet) file(name string, open func() (*os.File, error)) (*os.File, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if e := s.take(name, func(*entry) bool { return true }); e != nil {
		fd, err := dupCloexec(e.file)
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

// checkName applies activation's rule, the successor's: a name it would
// refuse would fail every later upgrade.
func checkName(name string) error {
	return activation.CheckName(name) // wraps ErrBadName
}

// onFile runs f on file's descriptor through SyscallConn, which never
// changes its mode: os.File.Fd puts a file that the os package made
// non-blocking back into blocking mode, and the sockets are open file
// descriptions shared with the other generations, whose accept loops rely
// on O_NONBLOCK.
func onFile(file *os.File, f func(fd int)) error {
	rc, err := file.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Control(func(fd uintptr) { f(int(fd)) })
}

func sockname(file *os.File) (unix.Sockaddr, error) {
	var sa unix.Sockaddr
	var serr error
	if err := onFile(file, func(fd int) { sa, serr = unix.Getsockname(fd) }); err != nil {
		return nil, err
	}
	return sa, serr
}

func dupCloexec(file *os.File) (int, error) {
	nfd := -1
	var derr error
	if err := onFile(file, func(fd int) { nfd, derr = unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3) }); err != nil {
		return -1, err
	}
	return nfd, derr
}

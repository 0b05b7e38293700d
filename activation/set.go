package activation

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
)

// Set holds the fds a process received. Lookups by name (an fd's Name or
// one of its Aliases) take fds out of the Set: from then on the caller owns
// what it got, and Close closes only what is left. A nil *Set is an empty Set (what Receive returns with an error).
// The methods are safe for concurrent use.
type Set struct {
	mu    sync.Mutex
	files []File // held, in fd order
}

// Files returns the fds the Set still holds (all of them until one is
// taken), in fd order. The Set keeps owning them: do not close the
// returned *os.File values; take what you use.
func (s *Set) Files() []File {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	files := slices.Clone(s.files)
	for i := range files {
		files[i].Aliases = slices.Clone(files[i].Aliases)
	}
	return files
}

// Names returns the distinct names (aliases included) of the fds the Set
// holds, in the order of their first fd.
func (s *Set) Names() []string {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for _, f := range s.files {
		for _, n := range append([]string{f.Name}, f.Aliases...) {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	return names
}

// Close closes every fd the Set still holds and empties it. What was taken
// stays open. It never shuts a socket down or unlinks its path.
func (s *Set) Close() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	files := s.files
	s.files = nil
	s.mu.Unlock()
	var errs []error
	for _, f := range files {
		if err := f.File.Close(); err != nil {
			errs = append(errs, fmt.Errorf("activation: close fd %d %q: %w", f.FD, f.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Take takes every fd named name out of the Set, whatever its kind, in fd
// order. The caller owns their File values.
func (s *Set) Take(name string) ([]File, error) {
	return take(s, name, asFile, false)
}

// File takes the one fd named name out of the Set, whatever its kind. The
// caller owns its File.
func (s *Set) File(name string) (File, error) {
	fs, err := take(s, name, asFile, true)
	if err != nil {
		return File{}, err
	}
	return fs[0], nil
}

// Listener takes the one listening stream socket named name (TCP, unix
// stream or unix seqpacket) out of the Set and returns it as a
// *net.TCPListener or *net.UnixListener. The listener works on a duplicate
// of the inherited fd, which is closed: its fd number is not the inherited
// one. A unix listener never unlinks its path on Close.
func (s *Set) Listener(name string) (net.Listener, error) {
	ls, err := take(s, name, asListener, true)
	if err != nil {
		return nil, err
	}
	return ls[0], nil
}

// Listeners takes every listening stream socket named name out of the Set,
// in fd order, as Listener does. It takes all of them or none.
func (s *Set) Listeners(name string) ([]net.Listener, error) {
	return take(s, name, asListener, false)
}

// PacketConn takes the one datagram socket named name (UDP or unix
// datagram) out of the Set and returns it as a *net.UDPConn or
// *net.UnixConn, on a duplicate of the inherited fd, which is closed.
func (s *Set) PacketConn(name string) (net.PacketConn, error) {
	cs, err := take(s, name, asPacketConn, true)
	if err != nil {
		return nil, err
	}
	return cs[0], nil
}

// PacketConns takes every datagram socket named name out of the Set, in fd
// order, as PacketConn does. It takes all of them or none.
func (s *Set) PacketConns(name string) ([]net.PacketConn, error) {
	return take(s, name, asPacketConn, false)
}

// Conn takes the one connected stream socket named name out of the Set: the
// connection an Accept=yes service is started for is named NameConnection.
// It returns a *net.TCPConn or *net.UnixConn on a duplicate of the
// inherited fd, which is closed.
func (s *Set) Conn(name string) (net.Conn, error) {
	cs, err := take(s, name, asConn, true)
	if err != nil {
		return nil, err
	}
	return cs[0], nil
}

// Conns takes every connected stream socket named name out of the Set, in
// fd order, as Conn does. It takes all of them or none.
func (s *Set) Conns(name string) ([]net.Conn, error) {
	return take(s, name, asConn, false)
}

// conversion says which fds a lookup wants and what it makes of them.
type conversion[T any] struct {
	want    string          // for errors: "listening stream socket"
	match   func(File) bool // which fds qualify
	convert func(File) (T, error)
	undo    func(T) // closes a converted value when the lookup is rolled back
	dup     bool    // convert works on a duplicate: the inherited fd is closed
}

var (
	asFile = conversion[File]{
		want:    "fd",
		match:   func(File) bool { return true },
		convert: func(f File) (File, error) { return f, nil },
		undo:    func(File) {},
	}
	asListener = conversion[net.Listener]{
		want:    "listening stream socket",
		match:   func(f File) bool { return f.Kind.stream() && f.Listening },
		convert: fileListener,
		undo:    func(l net.Listener) { _ = l.Close() },
		dup:     true,
	}
	asPacketConn = conversion[net.PacketConn]{
		want:    "datagram socket",
		match:   func(f File) bool { return f.Kind == KindUDP || f.Kind == KindUnixDatagram },
		convert: filePacketConn,
		undo:    func(c net.PacketConn) { _ = c.Close() },
		dup:     true,
	}
	asConn = conversion[net.Conn]{
		want:    "connected stream socket",
		match:   func(f File) bool { return f.Kind.stream() && !f.Listening },
		convert: fileConn,
		undo:    func(c net.Conn) { _ = c.Close() },
		dup:     true,
	}
)

func fileListener(f File) (net.Listener, error) {
	l, err := net.FileListener(f.File)
	if err != nil {
		return nil, fmt.Errorf("activation: fd %d %q: %w", f.FD, f.Name, err)
	}
	if ul, ok := l.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false) // the path belongs to the socket unit
	}
	return l, nil
}

func filePacketConn(f File) (net.PacketConn, error) {
	c, err := net.FilePacketConn(f.File)
	if err != nil {
		return nil, fmt.Errorf("activation: fd %d %q: %w", f.FD, f.Name, err)
	}
	return c, nil
}

func fileConn(f File) (net.Conn, error) {
	c, err := net.FileConn(f.File)
	if err != nil {
		return nil, fmt.Errorf("activation: fd %d %q: %w", f.FD, f.Name, err)
	}
	return c, nil
}

// take finds the held fds named name that c matches, converts each, and
// only when every conversion succeeded removes them from the Set, closing
// the inherited fds that the conversion duplicated. A rolled-back
// conversion only closes its own duplicate (undo), so the error of that
// close changes nothing for the caller. With one, exactly one must match.
func take[T any](s *Set, name string, c conversion[T], one bool) ([]T, error) {
	if s == nil {
		return nil, &LookupError{Name: name, Want: c.want, Err: ErrNoSocket}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var idx []int
	for i, f := range s.files {
		if f.named(name) && c.match(f) {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 || one && len(idx) > 1 {
		e := &LookupError{Name: name, Want: c.want, Found: len(idx), Err: ErrNoSocket}
		if len(idx) > 1 {
			e.Err = ErrAmbiguous
		}
		for _, f := range s.files {
			e.Have = append(e.Have, f.names()+": "+f.describe())
		}
		return nil, e
	}
	out := make([]T, 0, len(idx))
	for _, i := range idx {
		v, err := c.convert(s.files[i])
		if err != nil {
			for _, done := range out {
				c.undo(done)
			}
			return nil, err
		}
		out = append(out, v)
	}
	for n, i := range idx {
		if c.dup {
			// Closing the inherited fd drops one reference to the socket
			// the duplicate keeps open: it cannot affect the duplicate,
			// and Linux releases the fd number whatever close reports.
			_ = s.files[i-n].File.Close()
		}
		s.files = slices.Delete(s.files, i-n, i-n+1)
	}
	return out, nil
}

package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/batonhq/baton/activation"
	"github.com/batonhq/baton/internal/sockurl"
	"github.com/batonhq/baton/internal/supervisor"
)

// sockets returns the sockets for CMD: inherited from systemd, or bound
// here. close releases them.
func (c *runCommand) sockets() ([]supervisor.Socket, func(), error) {
	set, err := activation.Receive()
	switch {
	case errors.Is(err, activation.ErrNotActivated):
		return c.bind()
	case err != nil:
		return nil, nil, err
	}
	socks, err := c.selectInherited(set)
	if err != nil {
		_ = set.Close()
		return nil, nil, err
	}
	return socks, func() {
		for _, s := range socks {
			_ = s.File.Close()
		}
		_ = set.Close()
	}, nil
}

// selectInherited applies --listen to the inherited fds.
func (c *runCommand) selectInherited(set *activation.Set) ([]supervisor.Socket, error) {
	if len(c.listen) == 0 {
		var socks []supervisor.Socket
		for _, f := range set.Files() {
			fs, err := set.Take(f.Name) // "" when taken with an earlier name
			if err != nil {
				continue
			}
			for _, t := range fs {
				socks = append(socks, supervisor.Socket{Name: t.Name, File: t.File})
			}
		}
		return socks, nil
	}
	var socks []supervisor.Socket
	for _, l := range c.listen {
		if l.addr == nil {
			fs, err := set.Take(l.name)
			if err != nil {
				return nil, fmt.Errorf("--listen %s: %w", l.name, err)
			}
			for _, f := range fs {
				socks = append(socks, supervisor.Socket{Name: l.name, File: f.File})
			}
			continue
		}
		found := false
		for _, f := range set.Files() {
			if f.Addr == nil || !sameAddr(*l.addr, f.Addr) {
				continue
			}
			fs, err := set.Take(f.Name)
			if err != nil {
				return nil, err
			}
			for _, t := range fs {
				if t.FD == f.FD {
					socks = append(socks, supervisor.Socket{Name: l.name, File: t.File})
					found = true
				} else {
					_ = t.File.Close()
				}
			}
			break
		}
		if !found {
			return nil, fmt.Errorf("--listen %s=%s: no inherited socket is bound there (have %v)", l.name, l.addr, set.Files())
		}
	}
	return socks, nil
}

// sameAddr reports whether the inherited socket's address is u.
func sameAddr(u sockurl.Addr, a net.Addr) bool {
	if u.Network == "unix" {
		return a.Network() == "unix" && a.String() == u.Address
	}
	if u.Stream() != strings.HasPrefix(a.Network(), "tcp") {
		return false
	}
	want, err := net.ResolveTCPAddr("tcp", u.Address) // numeric: no lookup
	if err != nil {
		return false
	}
	got, err := net.ResolveTCPAddr("tcp", a.String())
	if err != nil {
		return false
	}
	return want.Port == got.Port && (want.IP == nil || want.IP.Equal(got.IP) ||
		(want.IP.IsUnspecified() && got.IP.IsUnspecified()))
}

// bind creates the --listen sockets.
func (c *runCommand) bind() ([]supervisor.Socket, func(), error) {
	var (
		socks   []supervisor.Socket
		closers []func()
	)
	release := func() {
		for _, f := range closers {
			f()
		}
	}
	for _, l := range c.listen {
		if l.addr == nil {
			release()
			return nil, nil, &usageError{cmd: "run", err: errListenNoURL(l.raw, "baton run was started without sockets to select NAME from")}
		}
		f, closeFn, err := bindOne(*l.addr)
		if err != nil {
			release()
			return nil, nil, fmt.Errorf("--listen %s=%s: %w", l.name, l.addr, err)
		}
		socks = append(socks, supervisor.Socket{Name: l.name, File: f})
		closers = append(closers, closeFn)
	}
	return socks, release, nil
}

// bindOne binds a socket and returns a file for CMD; closeFn closes both
// (and removes a unix socket's path, which baton created).
func bindOne(a sockurl.Addr) (*os.File, func(), error) {
	type filer interface {
		File() (*os.File, error)
		Close() error
	}
	var s filer
	var err error
	if a.Network == "unix" {
		removeStale(a.Address)
	}
	if a.Stream() {
		var ln net.Listener
		ln, err = net.Listen(a.Network, a.Address)
		if err == nil {
			s = ln.(filer)
		}
	} else {
		var pc net.PacketConn
		pc, err = net.ListenPacket(a.Network, a.Address)
		if err == nil {
			s = pc.(filer)
		}
	}
	if err != nil {
		return nil, nil, err
	}
	f, err := s.File()
	if err != nil {
		_ = s.Close()
		return nil, nil, err
	}
	return f, func() { _ = f.Close(); _ = s.Close() }, nil
}

// removeStale removes a unix socket path that nothing listens on any more
// (left by a baton that was killed), so that binding it again works. A
// path that is not a socket, or that answers, is left alone.
func removeStale(path string) {
	if strings.HasPrefix(path, "@") {
		return
	}
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Type() != os.ModeSocket {
		return
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		_ = c.Close()
		return
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		_ = os.Remove(path)
	}
}

// sockAddr describes a socket file for the log.
func sockAddr(f *os.File) string {
	st := socketStatus(supervisor.Socket{File: f})
	if st.Addr == "" {
		return f.Name()
	}
	return st.Kind + "://" + st.Addr
}

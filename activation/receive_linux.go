package activation

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/internal/pidfs"
)

// sys is the seam between Receive and the kernel: tests replace single
// functions to inject the failures a real system rarely shows.
type sys struct {
	getenv      func(string) (string, bool)
	unsetenv    func(string) error
	getpid      func() int
	pidfdID     selfID
	fdLimit     func() (int, bool) // the highest possible fd number + 1, if known
	fcntl       func(fd, cmd, arg int) (int, error)
	fstat       func(fd int, st *unix.Stat_t) error
	fstatfs     func(fd int, st *unix.Statfs_t) error
	getsockopt  func(fd, level, opt int) (int, error)
	getsockname func(fd int) (unix.Sockaddr, error)
	close       func(fd int) error
	newFile     func(fd uintptr, name string) *os.File
}

var osSys = sys{
	getenv:      os.LookupEnv,
	unsetenv:    os.Unsetenv,
	getpid:      os.Getpid,
	pidfdID:     pidfs.Self,
	fdLimit:     nrOpen,
	fcntl:       func(fd, cmd, arg int) (int, error) { return unix.FcntlInt(uintptr(fd), cmd, arg) },
	fstat:       unix.Fstat,
	fstatfs:     unix.Fstatfs,
	getsockopt:  unix.GetsockoptInt,
	getsockname: unix.Getsockname,
	close:       unix.Close,
	newFile:     os.NewFile,
}

// smallFDs is the fd number below which Receive does not read the fd table
// size: 1024, the usual soft RLIMIT_NOFILE.
const smallFDs = 1024

// nrOpen reads fs.nr_open, the kernel's ceiling on fd numbers: no fd table
// grows past it. Without /proc there is no bound, and the per-fd checks
// catch a count that is too large.
func nrOpen() (int, bool) {
	b, err := os.ReadFile("/proc/sys/fs/nr_open")
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n <= 0 {
		return 0, false
	}
	return n, true
}

func receive(sys *sys) (*Set, error) {
	env, err := readEnv(sys.getenv, sys.unsetenv)
	if err != nil {
		return nil, err
	}
	n, names, err := parse(env, sys.getpid(), sys.pidfdID)
	if err != nil {
		return nil, err
	}
	last := FirstFD + n - 1
	if err := checkFDs(sys, env.fds, last); err != nil {
		return nil, err
	}
	files, dups, err := classifyAll(sys, names, last)
	if err != nil {
		return nil, err
	}
	// Nothing can fail from here on.
	for _, fd := range dups {
		// The fd is a second reference to a file an earlier fd keeps
		// open: closing it cannot lose data, and Linux releases the fd
		// number whatever close reports.
		_ = sys.close(fd)
	}
	for i := range files {
		files[i].File = sys.newFile(uintptr(files[i].FD), files[i].Name)
	}
	return &Set{files: files}, nil
}

// checkFDs checks that every fd from 3 to last is open, and sets
// close-on-exec on each. value is LISTEN_FDS, for errors.
func checkFDs(sys *sys, value string, last int) error {
	// A count past the fd table is refused before any fd is touched. Below
	// smallFDs the walk that follows is short and finds it anyway, so the
	// table size is only read for larger counts.
	if last >= smallFDs {
		if limit, ok := sys.fdLimit(); ok && last >= limit {
			return &EnvError{
				Var: EnvFDs, Value: value,
				Err: fmt.Errorf("fd %d is past the end of the fd table (fs.nr_open=%d)", last, limit),
			}
		}
	}
	// Check every fd first, then set close-on-exec: an error leaves the
	// fds as they were.
	flags := make([]int, 0, last-FirstFD+1)
	for fd := FirstFD; fd <= last; fd++ {
		fl, err := sys.fcntl(fd, unix.F_GETFD, 0)
		if errors.Is(err, unix.EBADF) {
			return &EnvError{Var: EnvFDs, Value: value, Err: fmt.Errorf("fd %d is not open: %w", fd, err)}
		}
		if err != nil {
			return &FDError{FD: fd, Op: "get fd flags", Err: err}
		}
		if fl&unix.FD_CLOEXEC != 0 {
			if err := notPassed(sys, fd); err != nil {
				return &EnvError{Var: EnvFDs, Value: value, Err: err}
			}
		}
		flags = append(flags, fl)
	}
	for i, fl := range flags {
		if fl&unix.FD_CLOEXEC == 0 {
			fd := FirstFD + i
			if _, err := sys.fcntl(fd, unix.F_SETFD, fl|unix.FD_CLOEXEC); err != nil {
				return &FDError{FD: fd, Op: "set close-on-exec", Err: err}
			}
		}
	}
	return nil
}

// Magic numbers (f_type) of the cgroup file systems.
const (
	cgroupMagic  = 0x27e0eb   // CGROUP_SUPER_MAGIC, v1
	cgroup2Magic = 0x63677270 // CGROUP2_SUPER_MAGIC
)

// notPassed tells a close-on-exec fd that this process opened after exec
// from one the manager passed (which another reader of LISTEN_FDS may have
// made close-on-exec already). The one case known for certain: a file on
// a cgroup file system, which the Go runtime (1.25+) keeps open at the
// lowest free fds to follow the CPU limit, so a LISTEN_FDS larger than
// what was passed names them.
func notPassed(sys *sys, fd int) error {
	var sfs unix.Statfs_t
	if err := sys.fstatfs(fd, &sfs); err != nil {
		return nil // classify reports it
	}
	if sfs.Type == cgroupMagic || sfs.Type == cgroup2Magic {
		return fmt.Errorf("fd %d was not passed to this process: it is a close-on-exec cgroup file, opened after exec (by the Go runtime)", fd)
	}
	return nil
}

// classifyAll classifies the fds from 3 to last and names them (names nil:
// all NameUnknown). It returns the distinct files, in fd order, and the
// fds that are copies of an earlier one, whose names it made aliases.
func classifyAll(sys *sys, names []string, last int) (files []File, dups []int, err error) {
	seen := map[fileID]int{} // index in files
	for fd := FirstFD; fd <= last; fd++ {
		f, id, err := classify(sys, fd)
		if err != nil {
			return nil, nil, err
		}
		f.Name = NameUnknown
		if names != nil {
			f.Name = names[fd-FirstFD]
		}
		if id != (fileID{}) {
			if i, ok := seen[id]; ok {
				if !files[i].named(f.Name) {
					files[i].Aliases = append(files[i].Aliases, f.Name)
				}
				dups = append(dups, fd)
				continue
			}
			seen[id] = len(files)
		}
		files = append(files, f)
	}
	return files, dups, nil
}

// fileID identifies an open file for de-duplication; the zero value means
// "never a duplicate".
type fileID struct {
	dev, ino uint64
	accmode  int
}

// mqueueMagic is MQUEUE_MAGIC, the f_type of the mqueue file system.
const mqueueMagic = 0x19800202

// classify finds out what fd is, and the identity that de-duplicates it.
func classify(sys *sys, fd int) (File, fileID, error) {
	f := File{FD: fd}
	var st unix.Stat_t
	if err := sys.fstat(fd, &st); err != nil {
		return f, fileID{}, &FDError{FD: fd, Op: "fstat", Err: err}
	}
	id := fileID{dev: st.Dev, ino: st.Ino, accmode: unix.O_RDWR}
	switch st.Mode & unix.S_IFMT {
	case 0:
		// An anonymous inode (eventfd, epoll, timerfd...): they all
		// share one inode, so it identifies nothing.
		return f, fileID{}, nil
	case unix.S_IFSOCK:
		// A socket has one inode of its own, and one open file: every
		// fd for it is a duplicate.
		err := classifySocket(sys, &f)
		return f, id, err
	case unix.S_IFIFO:
		f.Kind = KindFIFO
	case unix.S_IFREG:
		var sfs unix.Statfs_t
		if err := sys.fstatfs(fd, &sfs); err != nil {
			return f, fileID{}, &FDError{FD: fd, Op: "fstatfs", Err: err}
		}
		if sfs.Type == mqueueMagic {
			f.Kind = KindMqueue
		}
	}
	// Two ends of one pipe share an inode but not an access mode.
	fl, err := sys.fcntl(fd, unix.F_GETFL, 0)
	if err != nil {
		return f, fileID{}, &FDError{FD: fd, Op: "get file status flags", Err: err}
	}
	id.accmode = fl & unix.O_ACCMODE
	return f, id, nil
}

func classifySocket(sys *sys, f *File) error {
	opt := func(name string, o int) (int, error) {
		v, err := sys.getsockopt(f.FD, unix.SOL_SOCKET, o)
		if err != nil {
			return 0, &FDError{FD: f.FD, Op: "getsockopt " + name, Err: err}
		}
		return v, nil
	}
	domain, err := opt("SO_DOMAIN", unix.SO_DOMAIN)
	if err != nil {
		return err
	}
	typ, err := opt("SO_TYPE", unix.SO_TYPE)
	if err != nil {
		return err
	}
	proto, err := opt("SO_PROTOCOL", unix.SO_PROTOCOL)
	if err != nil {
		return err
	}
	switch {
	case (domain == unix.AF_INET || domain == unix.AF_INET6) && typ == unix.SOCK_STREAM &&
		(proto == unix.IPPROTO_TCP || proto == unix.IPPROTO_MPTCP):
		f.Kind = KindTCP
	case (domain == unix.AF_INET || domain == unix.AF_INET6) && typ == unix.SOCK_DGRAM && proto == unix.IPPROTO_UDP:
		f.Kind = KindUDP
	case domain == unix.AF_UNIX && typ == unix.SOCK_STREAM:
		f.Kind = KindUnixStream
	case domain == unix.AF_UNIX && typ == unix.SOCK_DGRAM:
		f.Kind = KindUnixDatagram
	case domain == unix.AF_UNIX && typ == unix.SOCK_SEQPACKET:
		f.Kind = KindUnixSeqpacket
	case domain == unix.AF_NETLINK:
		f.Kind = KindNetlink
	}
	if typ == unix.SOCK_STREAM || typ == unix.SOCK_SEQPACKET {
		acc, err := opt("SO_ACCEPTCONN", unix.SO_ACCEPTCONN)
		if err != nil {
			return err
		}
		f.Listening = acc != 0
	}
	if f.Kind == KindOther {
		return nil
	}
	sa, err := sys.getsockname(f.FD)
	if err != nil {
		return &FDError{FD: f.FD, Op: "getsockname", Err: err}
	}
	f.Addr = sockAddr(f.Kind, proto, sa)
	return nil
}

// sockAddr converts a socket address to the net.Addr the net package would
// give the same socket.
func sockAddr(k Kind, proto int, sa unix.Sockaddr) net.Addr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return ipAddr(k, sa.Addr[:], sa.Port, "")
	case *unix.SockaddrInet6:
		zone := ""
		if sa.ZoneId != 0 {
			zone = strconv.FormatUint(uint64(sa.ZoneId), 10)
			if ifi, err := net.InterfaceByIndex(int(sa.ZoneId)); err == nil {
				zone = ifi.Name
			}
		}
		return ipAddr(k, sa.Addr[:], sa.Port, zone)
	case *unix.SockaddrUnix:
		return &net.UnixAddr{Name: sa.Name, Net: k.String()}
	case *unix.SockaddrNetlink:
		return &NetlinkAddr{Protocol: proto, PortID: sa.Pid, Groups: sa.Groups}
	}
	return nil
}

func ipAddr(k Kind, ip []byte, port int, zone string) net.Addr {
	ip = slices.Clone(ip)
	if k == KindUDP {
		return &net.UDPAddr{IP: ip, Port: port, Zone: zone}
	}
	return &net.TCPAddr{IP: ip, Port: port, Zone: zone}
}

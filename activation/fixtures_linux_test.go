package activation

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fixture is one real fd to pass to a helper, with what Receive must make
// of it.
type fixture struct {
	name      string
	file      *os.File
	kind      Kind
	listening bool
	addr      string // as addrString prints it
}

// fixtures opens one fd of every kind; they are closed when the test ends.
// The unix socket paths live in dir.
func fixtures(t *testing.T, dir string) []fixture {
	t.Helper()
	var fs []fixture
	add := func(name string, f *os.File, k Kind, listening bool, addr string) {
		t.Cleanup(func() { _ = f.Close() })
		fs = append(fs, fixture{name: name, file: f, kind: k, listening: listening, addr: addr})
	}

	tl := listenTCP(t)
	add("tcp", fileOf(t, tl), KindTCP, true, "tcp "+tl.Addr().String())

	c := dialTCP(t)
	add("conn", fileOf(t, c), KindTCP, false, "tcp "+c.LocalAddr().String())

	u, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	add("udp", fileOf(t, u), KindUDP, false, "udp "+u.LocalAddr().String())

	us := listenUnix(t, "unix", filepath.Join(dir, "stream.sock"))
	add("unix", fileOf(t, us), KindUnixStream, true, "unix "+us.Addr().String())

	ug, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(dir, "dgram.sock"), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	add("unixgram", fileOf(t, ug), KindUnixDatagram, false, "unixgram "+ug.LocalAddr().String())

	up := listenUnix(t, "unixpacket", filepath.Join(dir, "seqpacket.sock"))
	add("unixpacket", fileOf(t, up), KindUnixSeqpacket, true, "unixpacket "+up.Addr().String())

	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	ff, err := os.OpenFile(fifo, os.O_RDWR, 0) // O_RDWR, as systemd opens a ListenFIFO=
	if err != nil {
		t.Fatal(err)
	}
	add("fifo", ff, KindFIFO, false, "")

	nl, port := netlinkSocket(t)
	add("netlink", nl, KindNetlink, false, fmt.Sprintf("netlink protocol=%d portid=%d groups=0x0", unix.NETLINK_ROUTE, port))

	if mq, ok := mqueue(t); ok {
		add("mqueue", mq, KindMqueue, false, "")
	}

	reg, err := os.CreateTemp(dir, "regular")
	if err != nil {
		t.Fatal(err)
	}
	add("file", reg, KindOther, false, "")

	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	add("pair", os.NewFile(uintptr(pair[0]), "pair0"), KindUnixStream, false, "unix @") // unnamed, as the net package prints it
	t.Cleanup(func() { _ = unix.Close(pair[1]) })
	return fs
}

func listenTCP(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// dialTCP returns the client end of a loopback TCP connection; the server
// end and the listener are closed at the end of the test.
func dialTCP(t *testing.T) net.Conn {
	t.Helper()
	l := listenTCP(t)
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return c
}

// listenUnix listens on a path that stays when the listener is closed, as
// a socket unit's would.
func listenUnix(t *testing.T, network, path string) *net.UnixListener {
	t.Helper()
	l, err := net.ListenUnix(network, &net.UnixAddr{Name: path, Net: network})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	return l
}

// fileOf returns a duplicate of a net value's fd and closes the value.
func fileOf(t *testing.T, v interface {
	Close() error
},
) *os.File {
	t.Helper()
	var (
		f   *os.File
		err error
	)
	switch v := v.(type) {
	case *net.TCPListener:
		f, err = v.File()
	case *net.UnixListener:
		f, err = v.File()
	case *net.TCPConn:
		f, err = v.File()
	case *net.UDPConn:
		f, err = v.File()
	case *net.UnixConn:
		f, err = v.File()
	default:
		t.Fatalf("fileOf %T", v)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	return f
}

func netlinkSocket(t *testing.T) (*os.File, uint32) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "netlink")
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		_ = f.Close()
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		_ = f.Close()
		t.Fatal(err)
	}
	return f, sa.(*unix.SockaddrNetlink).Pid
}

// mqueue opens a POSIX message queue and unlinks its name at once; false
// when the kernel has no message queues.
func mqueue(t *testing.T) (*os.File, bool) {
	t.Helper()
	name, err := unix.BytePtrFromString("baton-activation-test-" + strconv.Itoa(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	fd, _, errno := unix.Syscall6(unix.SYS_MQ_OPEN, uintptr(unsafe.Pointer(name)),
		unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600, 0, 0, 0)
	if errno != 0 {
		t.Logf("no message queue: mq_open: %v", errno)
		return nil, false
	}
	if _, _, errno := unix.Syscall(unix.SYS_MQ_UNLINK, uintptr(unsafe.Pointer(name)), 0, 0); errno != 0 {
		_ = unix.Close(int(fd))
		t.Fatalf("mq_unlink: %v", errno)
	}
	return os.NewFile(fd, "mqueue"), true
}

func filesOf(fs []fixture) []*os.File {
	out := make([]*os.File, len(fs))
	for i, f := range fs {
		out[i] = f.file
	}
	return out
}

func namesOf(fs []fixture) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.name
	}
	return out
}

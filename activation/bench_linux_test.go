package activation

import (
	"net"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkReceive measures Receive and Set.Close on four real sockets (a
// TCP listener, a UDP socket, a unix listener and a connected TCP socket):
// parsing, close-on-exec, classification with addresses, wrapping. The
// seam maps fds 3..6 onto the sockets, which the benchmark owns.
func BenchmarkReceive(b *testing.B) {
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer tl.Close()
	uc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer uc.Close()
	ul, err := net.Listen("unix", b.TempDir()+"/bench.sock")
	if err != nil {
		b.Fatal(err)
	}
	defer ul.Close()
	cc, err := net.Dial("tcp", tl.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	var real []int
	for _, v := range []interface {
		File() (*os.File, error)
	}{tl.(*net.TCPListener), uc.(*net.UDPConn), ul.(*net.UnixListener), cc.(*net.TCPConn)} {
		f, err := v.File()
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		real = append(real, int(f.Fd()))
	}
	fd := func(fd int) int { return real[fd-FirstFD] }
	s := osSys
	env := map[string]string{}
	s.getenv = func(v string) (string, bool) { x, ok := env[v]; return x, ok }
	s.unsetenv = func(v string) error { delete(env, v); return nil }
	s.getpid = func() int { return 4242 }
	s.fcntl = func(f, cmd, arg int) (int, error) { return osSys.fcntl(fd(f), cmd, arg) }
	s.fstat = func(f int, st *unix.Stat_t) error { return osSys.fstat(fd(f), st) }
	s.fstatfs = func(f int, st *unix.Statfs_t) error { return osSys.fstatfs(fd(f), st) }
	s.getsockopt = func(f, level, opt int) (int, error) { return osSys.getsockopt(fd(f), level, opt) }
	s.getsockname = func(f int) (unix.Sockaddr, error) { return osSys.getsockname(fd(f)) }
	s.close = func(int) error { b.Fatal("close of a duplicate"); return nil }
	s.newFile = func(f uintptr, name string) *os.File {
		d, err := unix.Dup(fd(int(f)))
		if err != nil {
			b.Fatal(err)
		}
		return os.NewFile(uintptr(d), name)
	}
	b.ReportAllocs()
	for b.Loop() {
		env[EnvPID], env[EnvFDs], env[EnvNames] = "4242", "4", "http:dns:admin:conn"
		set, err := receive(&s)
		if err != nil {
			b.Fatal(err)
		}
		if err := set.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

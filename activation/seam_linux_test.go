package activation

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/internal/testproc"
)

// fakeFD is an fd of the fake kernel.
type fakeFD struct {
	mode     uint32 // S_IFSOCK, S_IFIFO, S_IFREG, 0 (anonymous inode)
	dev, ino uint64
	flags    int // F_GETFL
	cloexec  bool
	fstype   int64 // statfs f_type
	domain   int
	typ      int
	proto    int
	accept   int
	sa       unix.Sockaddr
}

// fakeKernel backs a sys with a table of fake fds; fail injects an error
// by call ("fcntl F_SETFD 4", "fstat 3", "getsockopt SO_TYPE 3", ...).
type fakeKernel struct {
	t       *testing.T
	env     map[string]string
	fds     map[int]*fakeFD
	limit   int
	fail    map[string]error
	calls   []string
	closed  []int
	wrapped []int
}

func tcpListenerFD(ino uint64, port int) *fakeFD {
	return &fakeFD{
		mode: unix.S_IFSOCK, dev: 8, ino: ino, flags: unix.O_RDWR,
		domain: unix.AF_INET, typ: unix.SOCK_STREAM, proto: unix.IPPROTO_TCP, accept: 1,
		sa: &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}},
	}
}

func newFakeKernel(t *testing.T, fds ...*fakeFD) *fakeKernel {
	k := &fakeKernel{
		t:     t,
		env:   map[string]string{EnvPID: "4242", EnvFDs: fmt.Sprint(len(fds))},
		fds:   map[int]*fakeFD{},
		limit: 1 << 20,
		fail:  map[string]error{},
	}
	for i, fd := range fds {
		k.fds[FirstFD+i] = fd
	}
	return k
}

func (k *fakeKernel) call(name string, fd int) (*fakeFD, error) {
	key := fmt.Sprintf("%s %d", name, fd)
	k.calls = append(k.calls, key)
	if err := k.fail[key]; err != nil {
		return nil, err
	}
	f, ok := k.fds[fd]
	if !ok {
		return nil, unix.EBADF
	}
	return f, nil
}

var optNames = map[int]string{
	unix.SO_DOMAIN: "SO_DOMAIN", unix.SO_TYPE: "SO_TYPE", unix.SO_PROTOCOL: "SO_PROTOCOL", unix.SO_ACCEPTCONN: "SO_ACCEPTCONN",
}

func (k *fakeKernel) sys() *sys {
	return &sys{
		getenv: func(v string) (string, bool) { s, ok := k.env[v]; return s, ok },
		unsetenv: func(v string) error {
			if _, err := k.call("unsetenv "+v, 0); err != nil && !errors.Is(err, unix.EBADF) {
				return err
			}
			delete(k.env, v)
			return nil
		},
		getpid:  func() int { return 4242 },
		pidfdID: selfIDOf(77),
		fdLimit: func() (int, bool) { return k.limit, k.limit > 0 },
		fcntl: func(fd, cmd, arg int) (int, error) {
			name := map[int]string{unix.F_GETFD: "F_GETFD", unix.F_SETFD: "F_SETFD", unix.F_GETFL: "F_GETFL"}[cmd]
			f, err := k.call("fcntl "+name, fd)
			if err != nil {
				return 0, err
			}
			switch cmd {
			case unix.F_GETFD:
				if f.cloexec {
					return unix.FD_CLOEXEC, nil
				}
				return 0, nil
			case unix.F_SETFD:
				f.cloexec = arg&unix.FD_CLOEXEC != 0
				return 0, nil
			case unix.F_GETFL:
				return f.flags, nil
			}
			k.t.Fatalf("unexpected fcntl %d", cmd)
			return 0, nil
		},
		fstat: func(fd int, st *unix.Stat_t) error {
			f, err := k.call("fstat", fd)
			if err != nil {
				return err
			}
			*st = unix.Stat_t{Mode: f.mode | 0o600, Dev: f.dev, Ino: f.ino}
			return nil
		},
		fstatfs: func(fd int, st *unix.Statfs_t) error {
			f, err := k.call("fstatfs", fd)
			if err != nil {
				return err
			}
			*st = unix.Statfs_t{Type: f.fstype}
			return nil
		},
		getsockopt: func(fd, level, opt int) (int, error) {
			f, err := k.call("getsockopt "+optNames[opt], fd)
			if err != nil {
				return 0, err
			}
			return map[int]int{unix.SO_DOMAIN: f.domain, unix.SO_TYPE: f.typ, unix.SO_PROTOCOL: f.proto, unix.SO_ACCEPTCONN: f.accept}[opt], nil
		},
		getsockname: func(fd int) (unix.Sockaddr, error) {
			f, err := k.call("getsockname", fd)
			if err != nil {
				return nil, err
			}
			return f.sa, nil
		},
		close: func(fd int) error {
			k.closed = append(k.closed, fd)
			delete(k.fds, fd)
			return nil
		},
		newFile: func(fd uintptr, name string) *os.File {
			// A real file stands in for the fake fd, so that the Set can
			// close it.
			k.wrapped = append(k.wrapped, int(fd))
			f, err := os.Open(os.DevNull)
			if err != nil {
				k.t.Fatal(err)
			}
			return f
		},
	}
}

func TestReceiveSeam(t *testing.T) {
	testproc.CheckFDs(t)
	dup := tcpListenerFD(100, 80)
	k := newFakeKernel(t,
		tcpListenerFD(100, 80),
		&fakeFD{
			mode: unix.S_IFSOCK, dev: 8, ino: 101, flags: unix.O_RDWR, domain: unix.AF_INET6, typ: unix.SOCK_DGRAM, proto: unix.IPPROTO_UDP,
			sa: &unix.SockaddrInet6{Port: 53, Addr: [16]byte{15: 1}},
		},
		dup,
		&fakeFD{mode: unix.S_IFREG, dev: 9, ino: 7, flags: unix.O_RDWR, fstype: mqueueMagic, cloexec: true},
		&fakeFD{
			mode: unix.S_IFSOCK, dev: 8, ino: 102, flags: unix.O_RDWR, domain: unix.AF_NETLINK, typ: unix.SOCK_RAW, proto: unix.NETLINK_AUDIT,
			sa: &unix.SockaddrNetlink{Pid: 77, Groups: 1},
		},
		&fakeFD{mode: unix.S_IFSOCK, dev: 8, ino: 103, flags: unix.O_RDWR, domain: unix.AF_INET, typ: unix.SOCK_SEQPACKET, proto: unix.IPPROTO_SCTP, accept: 1},
		&fakeFD{
			mode: unix.S_IFSOCK, dev: 8, ino: 104, flags: unix.O_RDWR, domain: unix.AF_INET, typ: unix.SOCK_STREAM, proto: unix.IPPROTO_MPTCP,
			sa: &unix.SockaddrInet4{Port: 443},
		},
	)
	k.env[EnvNames] = "web:dns:web:queue:audit:sctp:mptcp"
	set, err := receive(k.sys())
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	var got []string
	for _, f := range set.Files() {
		got = append(got, f.String())
	}
	want := []string{
		`fd 3 "web" tcp listener 127.0.0.1:80`,
		`fd 4 "dns" udp [::1]:53`,
		`fd 6 "queue" mqueue`,
		`fd 7 "audit" netlink protocol=9 portid=77 groups=0x1`,
		`fd 8 "sctp" other listener`,
		`fd 9 "mptcp" tcp connection 0.0.0.0:443`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Files (-want +got):\n%s", diff)
	}
	if !slices.Equal(k.closed, []int{5}) {
		t.Errorf("closed %v, want the duplicate 5", k.closed)
	}
	if !slices.Equal(k.wrapped, []int{3, 4, 6, 7, 8, 9}) {
		t.Errorf("wrapped %v", k.wrapped)
	}
	for fd, f := range k.fds {
		if !f.cloexec {
			t.Errorf("fd %d without close-on-exec", fd)
		}
	}
	if slices.Contains(k.calls, "fcntl F_SETFD 6") {
		t.Errorf("F_SETFD on fd 6, which already had close-on-exec")
	}
	if len(k.env) > 0 {
		t.Errorf("variables left set: %v", k.env)
	}
}

func TestReceiveSeamFailures(t *testing.T) {
	errIO := unix.EIO
	tests := []struct {
		name string
		fail string // the call that fails
		err  error
		want string
	}{
		{"fd not open", "fcntl F_GETFD 4", unix.EBADF, `activation: LISTEN_FDS="5": fd 4 is not open: bad file descriptor`},
		{"F_GETFD fails", "fcntl F_GETFD 4", errIO, `activation: fd 4: get fd flags: input/output error`},
		{"CLOEXEC fails", "fcntl F_SETFD 5", unix.EPERM, `activation: fd 5: set close-on-exec: operation not permitted`},
		{"fstat fails", "fstat 3", errIO, `activation: fd 3: fstat: input/output error`},
		{"fstatfs fails", "fstatfs 6", errIO, `activation: fd 6: fstatfs: input/output error`},
		{"F_GETFL fails", "fcntl F_GETFL 7", errIO, `activation: fd 7: get file status flags: input/output error`},
		{"SO_DOMAIN fails", "getsockopt SO_DOMAIN 3", errIO, `activation: fd 3: getsockopt SO_DOMAIN: input/output error`},
		{"SO_TYPE fails", "getsockopt SO_TYPE 4", errIO, `activation: fd 4: getsockopt SO_TYPE: input/output error`},
		{"SO_PROTOCOL fails", "getsockopt SO_PROTOCOL 3", errIO, `activation: fd 3: getsockopt SO_PROTOCOL: input/output error`},
		{"SO_ACCEPTCONN fails", "getsockopt SO_ACCEPTCONN 3", errIO, `activation: fd 3: getsockopt SO_ACCEPTCONN: input/output error`},
		{"getsockname fails", "getsockname 4", errIO, `activation: fd 4: getsockname: input/output error`},
		{"fd table", "", nil, `activation: LISTEN_FDS="5000": fd 5002 is past the end of the fd table (fs.nr_open=5000)`},
		{"unsetenv fails", "unsetenv LISTEN_FDS 0", unix.ENOMEM, `activation: unset LISTEN_FDS: cannot allocate memory`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			testproc.CheckFDs(t)
			k := newFakeKernel(t,
				tcpListenerFD(1, 80),
				tcpListenerFD(2, 81),
				tcpListenerFD(1, 80), // a duplicate of fd 3
				&fakeFD{mode: unix.S_IFREG, dev: 9, ino: 3, flags: unix.O_RDONLY},
				&fakeFD{mode: unix.S_IFIFO, dev: 9, ino: 4, flags: unix.O_RDWR},
			)
			if tt.fail != "" {
				k.fail[tt.fail] = tt.err
			} else {
				k.limit = 5000
				k.env[EnvFDs] = "5000"
			}
			set, err := receive(k.sys())
			if err == nil {
				_ = set.Close()
				t.Fatalf("no error, want %s", tt.want)
			}
			if set != nil {
				t.Errorf("a Set with the error")
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
			if tt.err != nil && !errors.Is(err, tt.err) {
				t.Errorf("error does not wrap %v", tt.err)
			}
			var fdErr *FDError
			if errors.Is(tt.err, errIO) && (!errors.As(err, &fdErr) || fdErr.FD == 0) {
				t.Errorf("error %T is not an *FDError", err)
			}
			if len(k.closed) > 0 || len(k.wrapped) > 0 {
				t.Errorf("on error: closed %v, wrapped %v", k.closed, k.wrapped)
			}
			wantEnv := map[string]string{}
			if tt.fail == "unsetenv LISTEN_FDS 0" {
				wantEnv[EnvFDs] = "5" // it failed; the two others are unset
			}
			if diff := cmp.Diff(wantEnv, k.env); diff != "" {
				t.Errorf("variables left (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReceiveSeamUnsetWhateverTheOutcome(t *testing.T) {
	for _, env := range []map[string]string{
		{},
		{EnvPID: "1", EnvFDs: "x", EnvNames: "y"},
		{EnvPID: "4242", EnvFDs: "x"},
		{EnvPID: "4242", EnvPIDFDID: "78", EnvFDs: "1"},
		{EnvPID: "4242", EnvPIDFDID: "x", EnvFDs: "1"},
		{EnvFDs: "1", EnvNames: "a"},
		{EnvPID: "4242", EnvFDs: "1", EnvNames: "a:b"},
	} {
		k := newFakeKernel(t)
		k.env = env
		if set, err := receive(k.sys()); err == nil {
			_ = set.Close()
			t.Errorf("%v: no error", env)
		}
		if len(k.env) > 0 {
			t.Errorf("variables left set: %v", k.env)
		}
	}
}

// TestReceiveSeamPIDFDID: sockets for another process's pidfd are not
// touched (no fd system call at all), and every variable is unset.
func TestReceiveSeamPIDFDID(t *testing.T) {
	k := newFakeKernel(t, tcpListenerFD(10, 80))
	k.env[EnvPIDFDID] = "78"
	set, err := receive(k.sys())
	if !errors.Is(err, ErrNotActivated) || set != nil {
		t.Fatalf("receive: %v, %v; want not activated", set, err)
	}
	for _, c := range k.calls {
		if !strings.HasPrefix(c, "unsetenv ") {
			t.Errorf("system call %q on fds meant for another process", c)
		}
	}
	if len(k.env) > 0 {
		t.Errorf("variables left set: %v", k.env)
	}
	k = newFakeKernel(t, tcpListenerFD(10, 80))
	k.env[EnvPIDFDID] = "77"
	set, err = receive(k.sys())
	if err != nil || len(set.Files()) != 1 {
		t.Fatalf("receive with its own pidfd id: %v", err)
	}
	_ = set.Close()
}

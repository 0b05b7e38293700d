package notifyrecv

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/internal/testproc"
)

func TestMain(m *testing.M) { testproc.Main(m) }

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[string]string
	}{
		{name: "one", in: "READY=1", want: map[string]string{"READY": "1"}},
		{name: "several", in: "READY=1\nSTATUS=a=b\n", want: map[string]string{"READY": "1", "STATUS": "a=b"}},
		{name: "junk ignored", in: "\nnoequals\n=x\nWATCHDOG=1", want: map[string]string{"WATCHDOG": "1"}},
		{name: "last wins", in: "STATUS=a\nSTATUS=b", want: map[string]string{"STATUS": "b"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, Parse([]byte(tt.in))); diff != "" {
			t.Errorf("%s: Parse(%q) (-want +got):\n%s", tt.name, tt.in, diff)
		}
	}
}

func TestSenderIdentified(t *testing.T) {
	testproc.CheckFDs(t)
	for _, addr := range []string{"", filepath.Join(t.TempDir(), "notify")} {
		c, err := Listen(addr)
		if err != nil {
			t.Fatal(err)
		}
		s, err := net.Dial("unixgram", c.Addr())
		if err != nil {
			t.Fatal(err)
		}
		// A message with an fd attached (FDSTORE=1): the fd is closed on
		// receipt, so the leak gate sees nothing.
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		rc, err := s.(*net.UnixConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var serr error
		err = rc.Write(func(fd uintptr) bool {
			serr = unix.Sendmsg(int(fd), []byte("FDSTORE=1\nREADY=1"), unix.UnixRights(int(r.Fd())), nil, 0)
			return true
		})
		if err == nil {
			err = serr
		}
		_ = r.Close()
		_ = w.Close()
		if err != nil {
			t.Fatal(err)
		}
		m, err := c.Read()
		if err != nil {
			t.Fatal(err)
		}
		if m.PID != os.Getpid() || m.UID != os.Getuid() || m.Fields["READY"] != "1" {
			t.Errorf("Read = %+v, want pid %d uid %d READY=1", m, os.Getpid(), os.Getuid())
		}
		if _, err := s.Write([]byte(strings.Repeat("x", MaxMessage+1))); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(); !errors.Is(err, ErrTruncated) {
			t.Errorf("Read of an oversized message = %v, want ErrTruncated", err)
		}
		_ = s.Close()
		if err := c.Close(); err != nil {
			t.Error(err)
		}
		if _, err := c.Read(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Read after Close = %v, want net.ErrClosed", err)
		}
		if addr != "" {
			if _, err := os.Stat(addr); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("socket path left behind: %v", err)
			}
		}
	}
}

func ExampleParse() {
	f := Parse([]byte("READY=1\nSTATUS=serving"))
	fmt.Println(f["READY"], f["STATUS"])
	// Output: 1 serving
}

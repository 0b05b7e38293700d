package handoff

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/control"
	"github.com/batonhq/baton/internal/testproc"
	"golang.org/x/sys/unix"
)

// TestStreamGraceConfig: a StreamGrace not shorter than DrainTimeout is
// refused by New, naming both.
func TestStreamGraceConfig(t *testing.T) {
	_, err := New(Config{StreamGrace: 3 * time.Second, DrainTimeout: 2 * time.Second, NoSignals: true, NoControl: true})
	if err == nil || !strings.Contains(err.Error(), "StreamGrace 3s") || !strings.Contains(err.Error(), "DrainTimeout 2s") {
		t.Errorf("New = %v, want an error naming StreamGrace 3s and DrainTimeout 2s", err)
	}
	c := Config{DrainTimeout: 2 * time.Second, StreamGrace: -1, NewConnGrace: -1}
	if c.check() != nil || c.streamGrace() != 1500*time.Millisecond || c.newConnGrace() != DefaultNewConnGrace {
		t.Errorf("negative graces: check %v, stream %v, new %v; want the defaults", c.check(), c.streamGrace(), c.newConnGrace())
	}
}

// TestReadyControlTaken: when this process's control socket name is
// taken (here by a server of its own; in the field by a process that bound
// it first), Ready fails instead of serving a process `baton reload`
// cannot reach.
func TestReadyControlTaken(t *testing.T) {
	checkLeaks(t)
	squat, err := control.Listen(func(context.Context) (int, error) { return 4242, nil })
	if err != nil {
		t.Fatal(err)
	}
	defer squat.Close()
	up, err := New(Config{NoSignals: true})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	if err := up.Ready(); err == nil || !strings.Contains(err.Error(), "control socket") {
		t.Errorf("Ready with the control socket name taken = %v, want an error", err)
	}
}

// TestSocketChecksKeepNonblock: looking at an inherited socket's address,
// and duplicating it, leave its O_NONBLOCK alone: the open file
// description is shared with every generation's accept loop.
func TestSocketChecksKeepNonblock(t *testing.T) {
	testproc.CheckFDs(t)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 8); err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "inherited")
	defer f.Close()
	if sameAddr(f, "tcp", "127.0.0.1:1") {
		t.Error("127.0.0.1:1 taken for the socket's address")
	}
	dup, err := dupCloexec(f)
	if err != nil {
		t.Fatal(err)
	}
	_ = unix.Close(dup)
	if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK == 0 {
		t.Errorf("O_NONBLOCK cleared (flags %#x, %v)", fl, err)
	}
}

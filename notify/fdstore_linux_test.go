package notify

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testproc"
	"golang.org/x/sys/unix"
)

// TestFDNameValidation checks names before anything is sent: a bad name
// with 300 fds sends none of them.
func TestFDNameValidation(t *testing.T) {
	testproc.CheckFDs(t)
	r := newReceiver(t, false)
	c := dialT(t, r)
	f := tempFile(t)
	files := make([]*os.File, 300)
	for i := range files {
		files[i] = f
	}
	tests := []struct {
		name string
		ok   bool
	}{
		{"", true},
		{"http", true},
		{"a b~!@#$%^&*()[]{}", true},
		{strings.Repeat("n", MaxFDNameLen), true},
		{strings.Repeat("n", MaxFDNameLen+1), false},
		{"http:admin", false},
		{":", false},
		{"tab\there", false},
		{"nl\n", false},
		{"nul\x00", false},
		{"del\x7f", false},
		{"é", false},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.name), func(t *testing.T) {
			err := CheckFDName(tt.name)
			if (err == nil) != tt.ok {
				t.Fatalf("CheckFDName: %v, want ok=%v", err, tt.ok)
			}
			if tt.ok {
				return
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("not ErrInvalid: %v", err)
			}
			for _, send := range []func() error{
				func() error { return c.FDStore(tt.name, files...) },
				func() error { return c.FDStoreWith(FDStoreOptions{Name: tt.name, NoPoll: true}, files...) },
				func() error { return c.FDStoreRemove(tt.name) },
			} {
				if err := send(); !errors.Is(err, ErrInvalid) {
					t.Errorf("got %v, want ErrInvalid", err)
				}
			}
		})
	}
	r.expectNothing()
}

func tempFile(t *testing.T) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "fd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func fileID(t *testing.T, f *os.File) [2]uint64 {
	t.Helper()
	var st unix.Stat_t
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &st) }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatalf("fstat %s: %v", f.Name(), serr)
	}
	return [2]uint64{st.Dev, st.Ino}
}

// TestFDStore sends a file, a pipe and a socket and checks the bytes and
// that the fds arrive open, as the same open files (st_dev, st_ino), in
// order, while the sender keeps its own copies open.
func TestFDStore(t *testing.T) {
	testproc.CheckFDs(t)
	r := newReceiver(t, true)
	c := dialT(t, r)
	file := tempFile(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	sock := newReceiver(t, false) // any socket will do
	sockFile, err := sock.conn.File()
	if err != nil {
		t.Fatal(err)
	}
	defer sockFile.Close()
	files := []*os.File{file, pr, pw, sockFile}

	tests := []struct {
		name string
		send func() error
		want string
	}{
		{"named", func() error { return c.FDStore("web", files...) }, "FDSTORE=1\nFDNAME=web"},
		{"unnamed", func() error { return c.FDStore("", files...) }, "FDSTORE=1"},
		{"nopoll", func() error { return c.FDStoreWith(FDStoreOptions{Name: "web", NoPoll: true}, files...) }, "FDSTORE=1\nFDNAME=web\nFDPOLL=0"},
		{"nopoll-unnamed", func() error { return c.FDStoreWith(FDStoreOptions{NoPoll: true}, files...) }, "FDSTORE=1\nFDPOLL=0"},
		{"SendFiles", func() error { return c.SendFiles("FDSTORE=1\nFDNAME=raw", files...) }, "FDSTORE=1\nFDNAME=raw"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.send(); err != nil {
				t.Fatal(err)
			}
			m := r.recv()
			defer m.closeFiles()
			if m.data != tt.want {
				t.Errorf("got %q, want %q", m.data, tt.want)
			}
			if m.pid != int32(os.Getpid()) {
				t.Errorf("sender pid %d, want %d", m.pid, os.Getpid())
			}
			if len(m.files) != len(files) {
				t.Fatalf("got %d fds, want %d", len(m.files), len(files))
			}
			for i, got := range m.files {
				if g, w := fileID(t, got), fileID(t, files[i]); g != w {
					t.Errorf("fd %d: dev/ino %v, want %v", i, g, w)
				}
			}
		})
	}
	// The sender's files are untouched: still open, still non-blocking
	// where the runtime made them so (a pipe read still honours deadlines).
	if err := pr.SetReadDeadline(time.Now()); err != nil {
		t.Errorf("pipe no longer pollable: %v", err)
	}
	if _, err := file.Stat(); err != nil {
		t.Errorf("file closed: %v", err)
	}
}

// TestFDStoreBatches sends 600 fds: they arrive in three datagrams of 253,
// 253 and 94 fds, each with the same FDNAME, in order.
func TestFDStoreBatches(t *testing.T) {
	testproc.CheckFDs(t)
	const total = 600
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if need := uint64(2*total + 200); lim.Cur < need && lim.Max >= need {
		raised := lim
		raised.Cur = need
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &raised); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = unix.Setrlimit(unix.RLIMIT_NOFILE, &lim) })
	} else {
		testproc.Require(t, lim.Cur >= need, "RLIMIT_NOFILE >= "+strconv.FormatUint(need, 10))
	}

	r := newReceiver(t, false)
	c := dialT(t, r)
	files := make([]*os.File, 0, total)
	for len(files) < total {
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, pr, pw)
	}
	defer func() {
		for _, f := range files {
			_ = f.Close()
		}
	}()

	// Read concurrently: the receiver's queue is short.
	type batch struct {
		data string
		pid  int32
		ids  [][2]uint64
		err  error
	}
	got := make(chan batch, 3)
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 3 {
			m, err := r.tryRecv(10 * time.Second)
			b := batch{data: m.data, pid: m.pid, err: err}
			for _, f := range m.files {
				b.ids = append(b.ids, fileID(t, f))
			}
			m.closeFiles()
			got <- b
			if err != nil {
				return
			}
		}
	})
	err := c.FDStore("many", files...)
	wg.Wait()
	close(got)
	if err != nil {
		t.Fatal(err)
	}
	next := 0
	var sizes []int
	for b := range got {
		if b.err != nil {
			t.Fatal(b.err)
		}
		if b.data != "FDSTORE=1\nFDNAME=many" {
			t.Errorf("batch %d: %q", len(sizes), b.data)
		}
		if b.pid != int32(os.Getpid()) {
			t.Errorf("batch %d: sender pid %d", len(sizes), b.pid)
		}
		sizes = append(sizes, len(b.ids))
		for _, id := range b.ids {
			if want := fileID(t, files[next]); id != want {
				t.Errorf("fd %d: dev/ino %v, want %v", next, id, want)
			}
			next++
		}
	}
	if want := []int{253, 253, 94}; !slicesEqual(sizes, want) {
		t.Errorf("batches of %v fds, want %v", sizes, want)
	}
}

func slicesEqual(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

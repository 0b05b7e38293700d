package supervisor

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/pidfs"
	"github.com/batonhq/baton/internal/testproc"
)

// TestCChildLibsystemd258 starts `baton run` the way systemd 258+ starts
// a service: its environment holds LISTEN_PIDFDID, the pidfd inode number
// of this process. Its CMD is a C server linked against libsystemd 258+
// (Debian sid's, run by sid's own dynamic loader and C library), whose
// sd_listen_fds refuses the sockets when that value, another process's,
// reaches it. Every CMD gets its own instead: the first one serves, and
// so does each one an upgrade starts.
func TestCChildLibsystemd258(t *testing.T) {
	root, version := testproc.SystemdRoot("sid")
	testproc.Require(t, version >= 258, "needs a Debian root with systemd 258+ in $BATON_SYSTEMD_ROOTS/systemd-sid or "+
		testproc.DefaultSystemdRoots+"/systemd-sid (.ci/systemd-tree sid DIR)")
	own, ok := pidfs.Self()
	testproc.Require(t, ok, "needs a kernel with pidfs (Linux 6.9+)")
	libs, _ := filepath.Glob(filepath.Join(root, "usr/lib/*/libsystemd.so.0"))
	loaders, _ := filepath.Glob(filepath.Join(root, "usr/lib*/ld-linux*.so.*"))
	if len(libs) != 1 || len(loaders) == 0 {
		t.Fatalf("%s: libsystemd %q, dynamic loader %q: want one of each", root, libs, loaders)
	}
	libDir := filepath.Dir(libs[0])
	bin := buildCWith(t, libDir)
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	sock, url := listen(t)
	env := append(os.Environ(), "LISTEN_PIDFDID="+strconv.FormatUint(own, 10))
	s, err := New(Config{
		Args:    []string{loaders[0], "--library-path", libDir, bin},
		Env:     env,
		Sockets: []Socket{sock},
		Drain:   10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	running(t, s)
	upgradeUnderLoad(t, s, url)
}

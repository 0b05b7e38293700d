package notify

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/batonhq/baton/internal/testproc"
)

// sdClient is a C program that speaks through libsystemd: READY with a
// STATUS, two fds to the fd store, then sd_notify_barrier, which returns
// only once the manager closed the barrier fd.
const sdClient = `#include <systemd/sd-daemon.h>
#include <unistd.h>

int main(void) {
	int fds[2];
	if (sd_notify(0, "READY=1\nSTATUS=from libsystemd") <= 0) return 10;
	if (pipe(fds) < 0) return 11;
	if (sd_pid_notify_with_fds(0, 0, "FDSTORE=1\nFDNAME=cpipe", fds, 2) <= 0) return 12;
	if (sd_notify_barrier(0, 10 * 1000000ULL) < 0) return 13;
	return 0;
}
`

// TestListenerWithLibsystemd: the Listener reads what libsystemd's own
// client sends, fds and barrier included, as systemd would.
func TestListenerWithLibsystemd(t *testing.T) {
	testproc.CheckFDs(t)
	gcc := testproc.LookPath(t, "gcc")
	_, err := os.Stat("/usr/include/systemd/sd-daemon.h")
	testproc.Require(t, err == nil, "needs libsystemd's headers (Debian: libsystemd-dev)")
	dir := t.TempDir()
	src, prog := filepath.Join(dir, "client.c"), filepath.Join(dir, "client")
	if err := os.WriteFile(src, []byte(sdClient), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(gcc, "-o", prog, src, "-lsystemd").CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}

	for _, abstract := range []bool{false, true} {
		l := listenT(t, abstract)
		cmd := exec.Command(prog)
		cmd.Env = append(WithoutEnv(os.Environ()), EnvSocket+"="+l.Socket())
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()

		m := receiveT(t, l)
		if m.State != "READY=1\nSTATUS=from libsystemd" || m.PID != cmd.Process.Pid || len(m.Files) != 0 {
			t.Errorf("got %q from %d with %d fds", m.State, m.PID, len(m.Files))
		}
		if v, _ := m.Lookup("STATUS"); v != "from libsystemd" {
			t.Errorf("STATUS=%q", v)
		}

		m = receiveT(t, l)
		if m.State != "FDSTORE=1\nFDNAME=cpipe" || m.PID != cmd.Process.Pid || len(m.Files) != 2 {
			t.Fatalf("got %q from %d with %d fds", m.State, m.PID, len(m.Files))
		}
		if fileID(t, m.Files[0]) != fileID(t, m.Files[1]) {
			t.Errorf("the two ends of one pipe have different inodes")
		}
		_ = m.Close()

		m = receiveT(t, l)
		if m.State != "BARRIER=1" || len(m.Files) != 1 {
			t.Fatalf("got %q with %d fds", m.State, len(m.Files))
		}
		select {
		case err := <-exited:
			t.Fatalf("client exited (%v) before the barrier fd was closed", err)
		default:
		}
		_ = m.Close()
		if err := <-exited; err != nil {
			t.Fatalf("client: %v", err)
		}
	}
}

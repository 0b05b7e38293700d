//go:build unix

package testproc

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

var (
	sharedOnce sync.Once
	sharedExe  string
	sharedErr  error
)

// CommandAs is Command run as another uid and gid (the caller must be root).
// The test binary is copied once into a directory every user may read, since
// the go tool builds it in a directory only its owner may enter; the copy is
// removed by the test's cleanup.
func CommandAs(t testing.TB, uid, gid uint32, name string, args ...string) *exec.Cmd {
	t.Helper()
	sharedOnce.Do(func() {
		var exe string
		exe, sharedErr = os.Executable()
		if sharedErr != nil {
			return
		}
		var dir string
		dir, sharedErr = os.MkdirTemp("", "testproc-")
		if sharedErr != nil {
			return
		}
		sharedExe = filepath.Join(dir, filepath.Base(exe))
		sharedErr = copyFile(exe, sharedExe)
		if sharedErr == nil {
			sharedErr = os.Chmod(dir, 0o755)
		}
	})
	if sharedErr != nil {
		t.Fatalf("testproc: shared copy of the test binary: %v", sharedErr)
	}
	t.Cleanup(func() { _ = os.RemoveAll(filepath.Dir(sharedExe)); sharedOnce = sync.Once{} })
	cmd := Command(t, name, args...)
	cmd.Path = sharedExe
	cmd.Args[0] = sharedExe
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	return cmd
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

package testproc

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"testing"
)

// EnvHelper names the environment variable that selects a helper.
const EnvHelper = "BATON_TEST_HELPER"

var (
	mu      sync.Mutex
	helpers = map[string]func(){}
)

// Register adds a named helper. It panics on a duplicate name: that is a bug
// in the test code, found the first time it runs.
func Register(name string, fn func()) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := helpers[name]; dup {
		panic("testproc: helper registered twice: " + name)
	}
	helpers[name] = fn
}

// Main runs the helper named by EnvHelper when the binary was started as one,
// and the tests otherwise. It never returns.
func Main(m *testing.M) {
	if name, ok := os.LookupEnv(EnvHelper); ok {
		mu.Lock()
		fn, found := helpers[name]
		mu.Unlock()
		if !found {
			names := make([]string, 0, len(helpers))
			for n := range helpers {
				names = append(names, n)
			}
			sort.Strings(names)
			fmt.Fprintf(os.Stderr, "testproc: no helper %q (have %v)\n", name, names)
			os.Exit(2)
		}
		fn()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Args returns the arguments a helper was started with (those given to
// Command after the name).
func Args() []string {
	for i, a := range os.Args {
		if a == "--" {
			return os.Args[i+1:]
		}
	}
	return nil
}

// Command returns a command that runs the test binary as the named helper,
// with the current environment plus EnvHelper. Its stdout and stderr go to
// the test's stderr unless the caller sets them.
func Command(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("testproc: %v", err)
	}
	cmd := exec.Command(exe, append([]string{"-test.run=^$", "--"}, args...)...)
	// A race-enabled helper would otherwise sleep a second at exit.
	cmd.Env = append(os.Environ(), EnvHelper+"="+name, "GORACE=atexit_sleep_ms=0")
	cmd.Stderr = os.Stderr
	return cmd
}

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

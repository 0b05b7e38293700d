package testproc

import (
	"fmt"
	"os"
	"os/exec"
	"sort"
	"sync"
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

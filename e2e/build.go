//go:build linux

package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/batonhq/baton/internal/testproc"
)

// Main is the TestMain of a package that boots boxes: when the test binary
// was started as a box's PID 1 preparer it does that, otherwise it runs the
// tests and then removes the build directory.
func Main(m *testing.M) {
	testproc.Register(initHelper, initMain)
	if _, ok := os.LookupEnv(testproc.EnvHelper); ok {
		testproc.Main(m) // never returns
	}
	code := m.Run()
	builds.cleanup()
	os.Exit(code)
}

// buildCache holds the binaries built by this test binary, each built once,
// in a directory under /run (so that no box's /tmp hides it from the tests,
// and a box sees it at the same path through Config.Share).
type buildCache struct {
	mu      sync.Mutex
	dir     string
	entries map[string]*buildEntry
}

type buildEntry struct {
	once sync.Once
	path string
	err  error
}

var builds = &buildCache{entries: map[string]*buildEntry{}}

// BuildDir returns the directory holding this test binary's builds, to be
// listed in Config.Share. Like Boot, it needs root (the directory is under
// /run): without it the test skips, or fails under CI=true.
func BuildDir(t testing.TB) string {
	t.Helper()
	testproc.RequireRoot(t)
	dir, err := builds.directory()
	if err != nil {
		t.Fatalf("e2e: build directory: %v", err)
	}
	return dir
}

func (c *buildCache) directory() (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dir == "" {
		dir, err := os.MkdirTemp("/run", "baton-e2e-bin-")
		if err != nil {
			return "", err
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			return "", err
		}
		c.dir = dir
	}
	return c.dir, nil
}

func (c *buildCache) cleanup() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dir != "" {
		_ = os.RemoveAll(c.dir)
	}
}

func (c *buildCache) entry(key string) *buildEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		e = &buildEntry{}
		c.entries[key] = e
	}
	return e
}

// Build compiles the Go main package pkg (a path relative to the module
// root, like "./examples/http") once per test binary, without the race
// detector, and returns the binary's path in BuildDir.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	goBin := testproc.LookPath(t, "go")
	dir := BuildDir(t)
	e := builds.entry("go:" + pkg)
	e.once.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			e.err = err
			return
		}
		out := filepath.Join(dir, path.Base(pkg))
		cmd := exec.Command(goBin, "build", "-o", out, pkg)
		cmd.Dir = root
		e.path, e.err = out, run(cmd)
	})
	if e.err != nil {
		t.Fatalf("e2e: build %s: %v", pkg, e.err)
	}
	return e.path
}

// BuildC compiles a C program (a path relative to the module root) with
// gcc and the given extra arguments (libraries), once per test binary, and
// returns the binary's path in BuildDir: NAME.c gives NAME-c.
func BuildC(t testing.TB, src string, args ...string) string {
	t.Helper()
	return buildC(t, src, "", args...)
}

// buildC is BuildC with a suffix for the binary's name (NAME-c-SUFFIX), so
// that builds of one source with other arguments do not clash.
func buildC(t testing.TB, src, suffix string, args ...string) string {
	t.Helper()
	gcc := testproc.LookPath(t, "gcc")
	dir := BuildDir(t)
	e := builds.entry("c:" + src + suffix)
	e.once.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			e.err = err
			return
		}
		base := filepath.Base(src)
		// sdserver.c gives sdserver-c: the name never clashes with a Go build.
		out := filepath.Join(dir, strings.TrimSuffix(base, filepath.Ext(base))+"-c"+suffix)
		cmd := exec.Command(gcc, append([]string{"-O2", "-Wall", "-o", out, src}, args...)...)
		cmd.Dir = root
		e.path, e.err = out, run(cmd)
	})
	if e.err != nil {
		t.Fatalf("e2e: build %s: %v", src, e.err)
	}
	return e.path
}

func run(cmd *exec.Cmd) error {
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%w: %s", err, out.Bytes())
	}
	return nil
}

// moduleRoot finds the directory of the go.mod above the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// SystemdTree returns the directory of the second systemd version's tree
// (testproc.SystemdTree: BATON_SYSTEMD_TREE, default
// /var/cache/baton/systemd-bpo, filled by .ci/fetch-systemd). Without it
// the test skips, or fails under CI=true.
func SystemdTree(t testing.TB) string {
	t.Helper()
	dir := testproc.SystemdTree()
	testproc.Require(t, dir != "", "needs a newer systemd tree in $BATON_SYSTEMD_TREE or "+
		testproc.DefaultSystemdTree+" (.ci/fetch-systemd DIR)")
	return dir
}

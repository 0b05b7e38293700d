package testproc

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true), where nothing that
// the tests need may be missing.
func InCI() bool { return os.Getenv("CI") == "true" }

// Rounds is how many rounds a soak test runs: local on a laptop, ci under
// CI, where the longer run is the one that counts.
func Rounds(local, ci int) int {
	if InCI() {
		return ci
	}
	return local
}

// Require skips the test with the reason when ok is false, or fails it when
// running under CI: a skipped test in CI is a defect.
func Require(t testing.TB, ok bool, reason string) {
	t.Helper()
	if ok {
		return
	}
	if InCI() {
		t.Fatalf("CI=true and this test cannot run: %s", reason)
	}
	t.Skipf("skipped: %s (runs, and must pass, under CI=true)", reason)
}

// RequireRoot requires the effective uid 0.
func RequireRoot(t testing.TB) {
	t.Helper()
	Require(t, os.Geteuid() == 0, "needs root")
}

// LookPath returns the path of a program the test needs, under the same rule
// as Require.
func LookPath(t testing.TB, prog string) string {
	t.Helper()
	p, err := exec.LookPath(prog)
	Require(t, err == nil, "needs "+prog+" in PATH")
	return p
}

// DefaultSystemdTree is where .ci/fetch-systemd unpacks a newer systemd
// (Debian bookworm-backports) when BATON_SYSTEMD_TREE does not say.
const DefaultSystemdTree = "/var/cache/baton/systemd-bpo"

// SystemdTree returns the unpacked newer systemd the tests may use, from
// BATON_SYSTEMD_TREE or DefaultSystemdTree, or "" when there is none.
func SystemdTree() string {
	dir := os.Getenv("BATON_SYSTEMD_TREE")
	if dir == "" {
		dir = DefaultSystemdTree
	}
	if _, err := os.Stat(dir + "/usr/lib/systemd/systemd"); err != nil {
		return ""
	}
	return dir
}

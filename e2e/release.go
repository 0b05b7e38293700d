//go:build linux

package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/batonhq/baton/internal/testproc"
)

// Release is a systemd release a scenario runs under: the machine's own
// (Debian 12: 252), Debian bookworm-backports' 254 overlaid on /usr
// (.ci/fetch-systemd), and the Debian roots that .ci/systemd-tree builds
// (trixie: 257, sid: the newest), booted with their own userland.
type Release struct {
	// Version is systemd's major version: 252, 254, 257, 262...
	Version int
	// Suite names the Debian suite of a root ("trixie", "sid"); empty for
	// the machine's and the overlaid tree.
	Suite string
	// Tree and Root are Config.SystemdTree and Config.Root for it.
	Tree, Root string
}

// String is the name a report line gives the release: "systemd=257".
func (r Release) String() string { return "systemd=" + strconv.Itoa(r.Version) }

// Config returns cfg set to boot the release.
func (r Release) Config(cfg Config) Config {
	cfg.SystemdTree, cfg.Root = r.Tree, r.Root
	return cfg
}

// NotifyReload reports whether the release knows Type=notify-reload
// (253 and later).
func (r Release) NotifyReload() bool { return r.Version >= 253 }

// BuildC compiles a C program against the release's libsystemd (see
// BuildC); for a root, against the libsystemd.so.0 in it, whose own C
// library is resolved when the program runs in the box.
func (r Release) BuildC(t testing.TB, src string) string {
	t.Helper()
	if r.Root == "" {
		return BuildC(t, src, "-lsystemd")
	}
	libs, _ := filepath.Glob(filepath.Join(r.Root, "usr/lib/*/libsystemd.so.0"))
	if len(libs) != 1 {
		t.Fatalf("e2e: %s: libsystemd.so.0 in %s: %q, want one", r, r.Root, libs)
	}
	return buildC(t, src, "-"+strconv.Itoa(r.Version),
		"-L"+filepath.Dir(libs[0]), "-Wl,--allow-shlib-undefined", "-l:libsystemd.so.0")
}

// Releases returns the releases the scenarios run under, oldest first:
// the machine's systemd, the overlaid 254 tree, and the trixie and sid
// roots. A release whose tree is missing is left out with a log line, or
// fails the test under CI=true.
func Releases(t testing.TB) []Release {
	t.Helper()
	rels := []Release{Machine(t)}
	if tree := testproc.SystemdTree(); tree != "" {
		rels = append(rels, Release{Version: testproc.TreeVersion(tree), Tree: tree})
	} else {
		missing(t, "the systemd 254 tree in $BATON_SYSTEMD_TREE or "+testproc.DefaultSystemdTree+" (.ci/fetch-systemd DIR)")
	}
	for _, suite := range []string{"trixie", "sid"} {
		root, v := testproc.SystemdRoot(suite)
		if root == "" || v == 0 {
			missing(t, fmt.Sprintf("the %s root in $BATON_SYSTEMD_ROOTS/systemd-%s or %s/systemd-%s (.ci/systemd-tree %s DIR)",
				suite, suite, testproc.DefaultSystemdRoots, suite, suite))
			continue
		}
		rels = append(rels, Release{Version: v, Suite: suite, Root: root})
	}
	return rels
}

// Machine returns the machine's own systemd release.
func Machine(t testing.TB) Release {
	t.Helper()
	out, err := exec.Command(systemdBin, "--version").Output()
	v := majorVersion(string(out))
	testproc.Require(t, err == nil && v > 0, "needs systemd at "+systemdBin)
	return Release{Version: v}
}

// missing logs a release that cannot run here, failing under CI=true.
func missing(t testing.TB, what string) {
	t.Helper()
	if testproc.InCI() {
		t.Fatalf("e2e: needs %s", what)
	}
	t.Logf("e2e: skipping a release: no %s", what)
}

// majorVersion reads "systemd 252 (252.39-1~deb12u1)" as 252.
func majorVersion(out string) int {
	f := strings.Fields(out)
	if len(f) < 2 || f[0] != "systemd" {
		return 0
	}
	v, _ := strconv.Atoi(f[1])
	return v
}

// forReleases runs f as a subtest "systemd=N" for each release.
func forReleases(t *testing.T, f func(t *testing.T, r Release)) {
	t.Helper()
	for _, r := range Releases(t) {
		t.Run(r.String(), func(t *testing.T) { f(t, r) })
	}
}

// Rounds scales a scenario's count of reloads for the release: the full
// count on the machine's systemd and the overlaid 254, a quarter (at least
// 6) on the roots, whose boxes run the same code paths under a newer
// systemd and would otherwise double CI's time.
func (r Release) Rounds(full int) int {
	if r.Root == "" {
		return full
	}
	return max(full/4, min(full, 6))
}

// UnitsFlags returns `baton units` flags for the release (its version:
// Type=notify-reload from 253 on), then extra.
func (r Release) UnitsFlags(extra ...string) []string {
	return append([]string{"--systemd-version", strconv.Itoa(r.Version)}, extra...)
}

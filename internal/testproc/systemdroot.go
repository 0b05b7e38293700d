package testproc

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// DefaultSystemdRoots is the directory where .ci/systemd-tree builds the
// Debian roots of newer systemd releases (systemd-trixie, systemd-sid) when
// BATON_SYSTEMD_ROOTS does not say.
const DefaultSystemdRoots = "/var/cache/baton"

// SystemdRoot returns the Debian root of suite (trixie, sid) that
// .ci/systemd-tree built under BATON_SYSTEMD_ROOTS or DefaultSystemdRoots,
// and the major version of the systemd in it; "" and 0 when there is none.
func SystemdRoot(suite string) (string, int) {
	dir := os.Getenv("BATON_SYSTEMD_ROOTS")
	if dir == "" {
		dir = DefaultSystemdRoots
	}
	root := filepath.Join(dir, "systemd-"+suite)
	if _, err := os.Stat(filepath.Join(root, "usr/lib/systemd/systemd")); err != nil {
		return "", 0
	}
	return root, TreeVersion(root)
}

// TreeVersion reads the major systemd version of a tree from its .version
// file ("262.1-1" is 262); 0 when unknown.
func TreeVersion(tree string) int {
	b, err := os.ReadFile(filepath.Join(tree, ".version"))
	if err != nil {
		return 0
	}
	v := strings.TrimSpace(string(b))
	if i := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		v = v[:i]
	}
	n, _ := strconv.Atoi(v)
	return n
}

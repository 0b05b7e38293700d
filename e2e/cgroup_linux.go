package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// hostCgroup2 returns where the host's cgroup2 hierarchy is mounted: pure
// unified at /sys/fs/cgroup, or hybrid at /sys/fs/cgroup/unified.
func hostCgroup2() (string, error) {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		return "", fmt.Errorf("statfs /sys/fs/cgroup: %w", err)
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		return "/sys/fs/cgroup", nil
	}
	if _, err := os.Stat("/sys/fs/cgroup/unified/cgroup.procs"); err == nil {
		return "/sys/fs/cgroup/unified", nil
	}
	return "", errors.New("no cgroup2 hierarchy on the host")
}

// removeCgroup removes a cgroup subtree, deepest first, killing what is
// still in it after a grace period.
func removeCgroup(cg string) error {
	if _, err := os.Stat(cg); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	deadline := time.Now().Add(10 * time.Second)
	killed := false
	for {
		err := rmdirTree(cg)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("remove cgroup %s: %w", cg, err)
		}
		if !killed && time.Until(deadline) < 8*time.Second {
			// cgroup.kill (Linux 5.14+) kills every process in the subtree.
			_ = os.WriteFile(filepath.Join(cg, "cgroup.kill"), []byte("1"), 0o644)
			killed = true
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rmdirTree removes the empty cgroup directories under and including dir.
func rmdirTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := rmdirTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := unix.Rmdir(dir); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("rmdir %s: %w", dir, err)
	}
	return nil
}

// sweep removes what boxes of a test binary that no longer runs left behind
// (a binary killed by go test -timeout runs no cleanups; the kernel killed
// its boxes through the parent-death signal).
func sweep(t testing.TB, root, cgRoot string) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range entries {
		dir := filepath.Join(root, e.Name())
		owner, err := os.ReadFile(filepath.Join(dir, "owner"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(owner)))
		if err != nil || pid <= 0 || unix.Kill(pid, 0) == nil {
			continue
		}
		cg := filepath.Join(cgRoot, "baton-e2e-"+e.Name())
		if err := removeCgroup(cg); err != nil {
			t.Logf("e2e: stale box %s: %v", e.Name(), err)
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("e2e: stale box %s: %v", e.Name(), err)
			continue
		}
		t.Logf("e2e: removed stale box %s (test binary %d gone)", e.Name(), pid)
	}
}

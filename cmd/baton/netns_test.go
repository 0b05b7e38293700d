//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/batonhq/baton/internal/testproc"
)

// TestControlOtherNetworkNamespace: examples/http in a network namespace
// of its own, as the default hardened units start it (PrivateNetwork=yes;
// abstract unix sockets belong to a network namespace). As root, `baton
// status`, `reload` and `stop --pid` work on it from ours. Before, status
// said "no baton control socket (is it a baton process?)".
func TestControlOtherNetworkNamespace(t *testing.T) {
	testproc.RequireRoot(t)
	testproc.CheckFDs(t)
	dir := t.TempDir()
	bin := buildExample(t, dir)
	pidfile := filepath.Join(dir, "pid")
	cmd := exec.Command(bin, "-listen", ":8080", "-pidfile", pidfile)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait() }()
	pid := testproc.WaitPIDFile(t, pidfile, 0)
	defer func() { _ = syscall.Kill(pid, syscall.SIGKILL) }()
	if r := baton(t, "status", "--pid", strconv.Itoa(pid)); r.code != 0 || !strings.Contains(r.stdout, "serving") {
		t.Fatalf("status: %d %q %s", r.code, r.stdout, r.stderr)
	}
	if r := baton(t, "reload", "--pid", strconv.Itoa(pid)); r.code != 0 {
		t.Fatalf("reload: %d %s", r.code, r.stderr)
	}
	pid = testproc.WaitPIDFile(t, pidfile, pid)
	if r := baton(t, "stop", "--pid", strconv.Itoa(pid)); r.code != 0 {
		t.Fatalf("stop: %d %s", r.code, r.stderr)
	}
	testproc.WaitGone(t, pid)
}

// TestNamespaceHint: a process whose namespace baton cannot enter gets
// the command that runs the same baton command there.
func TestNamespaceHint(t *testing.T) {
	testproc.RequireRoot(t)
	// A server as uid 65534 in a network namespace of its own, asked by
	// the same uid: no CAP_SYS_ADMIN to enter it.
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := buildExample(t, dir)
	exe := filepath.Join(dir, "baton")
	if out, err := exec.Command("cp", batonBin, exe).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	run := filepath.Join(dir, "run")
	if err := os.Mkdir(run, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(run, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	pidfile := filepath.Join(run, "pid")
	cmd := exec.Command(bin, "-listen", ":8080", "-log-level", "error", "-pidfile", pidfile)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNET,
		Credential: &syscall.Credential{Uid: 65534, Gid: 65534},
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pid := testproc.WaitPIDFile(t, pidfile, 0)
	c := exec.Command(exe, "status", "--pid", strconv.Itoa(pid))
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	r := batonCmd(t, c)
	var st syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("nsenter -t %d -n %s status --pid %d", pid, exe, pid)
	if r.code != exitDenied || !strings.Contains(r.stderr, fmt.Sprintf("net:[%d]", st.Ino)) || !strings.Contains(r.stderr, want) {
		t.Errorf("status as uid 65534 of a process in another network namespace: %d %q; want %d naming net:[%d] and %q", r.code, r.stderr, exitDenied, st.Ino, want)
	}
	t.Log(r.stderr)
}

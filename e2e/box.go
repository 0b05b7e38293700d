//go:build linux

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/internal/testproc"
)

// Defaults for Config's zero values.
const (
	DefaultBootTimeout     = 60 * time.Second
	DefaultPowerOffTimeout = 20 * time.Second
	DefaultStateRoot       = "/run/baton-e2e"
	DefaultCommandTimeout  = 90 * time.Second
)

// bootTarget is the box's default target: basic.target and nothing else.
const bootTarget = "baton-e2e.target"

// sigPowerOff asks systemd for a clean poweroff: SIGRTMIN+4, where glibc's
// SIGRTMIN is 34.
const sigPowerOff = unix.Signal(34 + 4)

// ErrBoxDown is returned by operations on a box that is no longer running.
var ErrBoxDown = errors.New("box is not running")

// Config describes a box. Its zero value boots the machine's own systemd.
type Config struct {
	// Name is part of the hostname, the cgroup directory and the state
	// directory; empty means a unique name derived from the test's.
	Name string
	// SystemdTree is a directory holding a usr/ tree of another systemd
	// version (see SystemdTree), overlaid read-only on the box's /usr.
	SystemdTree string
	// Root is a whole Debian root of another release (see Releases,
	// .ci/systemd-tree): the box boots it as its / (a copy-on-write
	// overlay: the tree is never written), with that release's systemd,
	// C library and tools; the host's /usr is not seen. Binaries built on
	// the host run there when their directory is in Share (a Go binary
	// links only the C library, which is backward compatible).
	Root string
	// Share lists host directories that must be visible at the same path
	// in the box although the box's tmpfs on /run, /tmp or /var/tmp would
	// hide them (a build directory, a test's temporary directory).
	Share []string
	// BootTimeout bounds the boot; zero means DefaultBootTimeout.
	BootTimeout time.Duration
	// PowerOffTimeout bounds the clean poweroff before SIGKILL; zero means
	// DefaultPowerOffTimeout.
	PowerOffTimeout time.Duration
	// StateRoot holds the boxes' state directories; empty means
	// DefaultStateRoot.
	StateRoot string
	// CommandTimeout bounds each command of Run, Systemctl, Show, Journal
	// and Install (and never goes past the test's deadline); zero means
	// DefaultCommandTimeout. A hung systemctl then fails the test with the
	// box's journal instead of hanging the whole test binary.
	CommandTimeout time.Duration
}

// Box is a running systemd in private namespaces. Its methods that take no
// context use the test's deadline and fail the test on error.
type Box struct {
	t     testing.TB
	name  string
	cfg   Config
	state string // host: state directory
	cg    string // host: the box's cgroup directory
	pid   int    // host PID of the box's systemd
	done  chan struct{}
	wait  error // the box's exit status, valid once done is closed

	dialOnce sync.Once
	dialer   *nsDialer
	dialErr  error

	closeOnce sync.Once
	closeErr  error
}

// Name returns the box's unique name.
func (b *Box) Name() string { return b.name }

// PID returns the host PID of the box's systemd (PID 1 inside).
func (b *Box) PID() int { return b.pid }

// Root returns a host path to the box's root directory, for reading files
// the box created (through /proc/PID/root).
func (b *Box) Root() string { return fmt.Sprintf("/proc/%d/root", b.pid) }

// Cgroup returns the host path of the box's cgroup directory.
func (b *Box) Cgroup() string { return b.cg }

// StateDir returns the host path of the box's state directory.
func (b *Box) StateDir() string { return b.state }

// Done is closed when the box's systemd has exited.
func (b *Box) Done() <-chan struct{} { return b.done }

// Boot starts a box and waits until its systemd reports the system running
// (or degraded). It registers Close with t.Cleanup. It needs root: without
// it the test skips, or fails under CI=true.
func Boot(t testing.TB, cfg Config) *Box {
	t.Helper()
	testproc.RequireRoot(t)
	testproc.LookPath(t, "nsenter")
	if _, err := os.Stat(filepath.Join(cfg.Root, systemdBin)); err != nil {
		testproc.Require(t, false, "needs systemd at "+filepath.Join(cfg.Root, systemdBin))
	}
	if cfg.BootTimeout <= 0 {
		cfg.BootTimeout = DefaultBootTimeout
	}
	if cfg.PowerOffTimeout <= 0 {
		cfg.PowerOffTimeout = DefaultPowerOffTimeout
	}
	if cfg.StateRoot == "" {
		cfg.StateRoot = DefaultStateRoot
	}
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = DefaultCommandTimeout
	}
	name := cfg.Name
	if name == "" {
		name = uniqueName(t.Name())
	}
	if !validName.MatchString(name) {
		t.Fatalf("e2e: bad box name %q (want %s)", name, validName)
	}
	cgRoot, err := hostCgroup2()
	if err != nil {
		t.Fatalf("e2e: %v", err)
	}
	sweep(t, cfg.StateRoot, cgRoot)

	b := &Box{
		t:     t,
		name:  name,
		cfg:   cfg,
		state: filepath.Join(cfg.StateRoot, name),
		cg:    filepath.Join(cgRoot, "baton-e2e-"+name),
		done:  make(chan struct{}),
	}
	t.Cleanup(func() {
		if t.Failed() {
			b.dumpDiagnostics()
		}
		t0 := time.Now()
		if err := b.Close(); err != nil {
			t.Errorf("e2e: close box %s: %v", name, err)
			return
		}
		t.Logf("box %s: powered off and removed in %v", name, time.Since(t0).Round(time.Millisecond))
	})
	t0 := time.Now()
	if err := b.start(); err != nil {
		t.Fatalf("e2e: box %s: %v\n%s", name, err, b.console())
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.BootTimeout)
	defer cancel()
	state, err := b.waitBooted(ctx)
	if err != nil {
		t.Fatalf("e2e: box %s did not boot: %v\nconsole:\n%s", name, err, b.console())
	}
	t.Logf("box %s: pid %d, %s, booted in %v", name, b.pid, state, time.Since(t0).Round(time.Millisecond))
	return b
}

var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]{0,40}$`)

// uniqueName derives a short name from a test name plus a random suffix.
func uniqueName(testName string) string {
	base := regexp.MustCompile(`[^a-zA-Z0-9]+`).ReplaceAllString(testName, "-")
	base = strings.Trim(strings.TrimPrefix(base, "Test"), "-")
	if len(base) > 24 {
		base = base[:24]
	}
	var r [3]byte
	_, _ = rand.Read(r[:])
	if base == "" {
		base = "box"
	}
	return base + "-" + hex.EncodeToString(r[:])
}

// start creates the state and cgroup directories and starts the box's PID 1.
func (b *Box) start() error {
	if err := os.RemoveAll(b.state); err != nil {
		return err
	}
	for _, d := range []string{"units", "etc.upper", "etc.work", "var.upper", "var.work"} {
		if err := os.MkdirAll(filepath.Join(b.state, d), 0o755); err != nil {
			return err
		}
	}
	// The owner file lets a later Boot tell a box left behind by a killed
	// test binary from one that another test binary is running.
	if err := os.WriteFile(filepath.Join(b.state, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return err
	}
	var id [16]byte
	_, _ = rand.Read(id[:])
	if err := os.WriteFile(filepath.Join(b.state, "machine-id"), []byte(hex.EncodeToString(id[:])+"\n"), 0o444); err != nil {
		return err
	}
	if err := writeBaseUnits(filepath.Join(b.state, "units")); err != nil {
		return err
	}
	console, err := os.OpenFile(filepath.Join(b.state, "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer console.Close()
	if err := os.Mkdir(b.cg, 0o755); err != nil {
		return fmt.Errorf("create cgroup: %w", err)
	}
	cgfd, err := unix.Open(b.cg, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open cgroup: %w", err)
	}
	defer unix.Close(cgfd)

	spec, err := json.Marshal(initSpec{Name: b.name, State: b.state, Tree: b.cfg.SystemdTree, Root: b.cfg.Root, Share: b.cfg.Share})
	if err != nil {
		return err
	}
	cmd := testproc.Command(b.t, initHelper, string(spec))
	cmd.Stdout = console
	cmd.Stderr = console
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWNET | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC,
		// Born in the box's cgroup: the box's cgroup namespace is rooted
		// there, and nothing of the box ever runs in the test's cgroup.
		UseCgroupFD: true,
		CgroupFD:    cgfd,
		Setsid:      true,
		// The box dies with the test binary (see keeper below).
		Pdeathsig: syscall.SIGKILL,
	}
	started := make(chan error, 1)
	go b.keeper(cmd, started)
	if err := <-started; err != nil {
		return fmt.Errorf("start PID 1: %w", err)
	}
	return nil
}

// keeper starts the box's PID 1 and waits for it, on a thread locked for the
// box's lifetime: the parent-death signal fires when the thread that started
// the child exits, and the Go runtime ends threads (a goroutine that exits
// locked, as Dial's workers do).
func (b *Box) keeper(cmd *exec.Cmd, started chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cmd.Start(); err != nil {
		started <- err
		close(b.done)
		return
	}
	b.pid = cmd.Process.Pid
	started <- nil
	b.wait = cmd.Wait()
	close(b.done)
}

// exited describes the end of the box's PID 1 (once done is closed).
func (b *Box) exited() error {
	if b.wait == nil {
		return errors.New("PID 1 exited with status 0")
	}
	return fmt.Errorf("PID 1 exited: %w", b.wait)
}

// waitBooted waits for the private bus socket, then for the end of the boot.
func (b *Box) waitBooted(ctx context.Context) (string, error) {
	private := filepath.Join(b.Root(), "run/systemd/private")
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := os.Stat(private); err == nil {
			break
		}
		select {
		case <-b.done:
			return "", b.exited()
		case <-ctx.Done():
			return "", fmt.Errorf("no %s: %w", private, ctx.Err())
		case <-tick.C:
		}
	}
	var last string
	for {
		// --wait blocks until the boot ends; it exits non-zero for
		// "degraded", which is fine for a box.
		out, _ := b.Exec(ctx, "systemctl", "is-system-running", "--wait")
		last = strings.TrimSpace(out)
		switch last {
		case "running", "degraded":
			return last, nil
		}
		select {
		case <-b.done:
			return "", b.exited()
		case <-ctx.Done():
			return "", fmt.Errorf("state %q: %w", last, ctx.Err())
		case <-tick.C:
		}
	}
}

// writeBaseUnits writes the box's boot target and masks the units a test box
// never wants.
func writeBaseUnits(dir string) error {
	target := "[Unit]\nDescription=baton e2e box\nRequires=basic.target\nAfter=basic.target\nAllowIsolate=yes\n"
	if err := os.WriteFile(filepath.Join(dir, bootTarget), []byte(target), 0o644); err != nil {
		return err
	}
	for _, u := range []string{
		"systemd-modules-load.service", "systemd-tmpfiles-clean.timer",
		"proc-sys-fs-binfmt_misc.automount", "systemd-firstboot.service",
		"systemd-repart.service", "systemd-pcrphase-sysinit.service",
		"systemd-pcrphase.service", "systemd-random-seed.service",
		"systemd-machine-id-commit.service", "getty.target", "console-getty.service",
		"systemd-networkd.service", "systemd-resolved.service", "systemd-timesyncd.service",
	} {
		if err := os.Symlink("/dev/null", filepath.Join(dir, u)); err != nil {
			return err
		}
	}
	return nil
}

// console returns the box's console log (PID 1's output), for diagnostics.
func (b *Box) console() string {
	out, err := os.ReadFile(filepath.Join(b.state, "console.log"))
	if err != nil {
		return "(no console log: " + err.Error() + ")"
	}
	return string(out)
}

// dumpDiagnostics logs the tail of the box's journal: a failed test shows
// what systemd saw.
func (b *Box) dumpDiagnostics() {
	select {
	case <-b.done:
		b.t.Logf("box %s: console:\n%s", b.name, b.console())
		return
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := b.Exec(ctx, "journalctl", "--no-pager", "-n", "300", "-o", "short-monotonic")
	b.t.Logf("box %s: journal tail (err %v):\n%s", b.name, err, out)
}

// Close powers the box off (SIGRTMIN+4, SIGKILL after PowerOffTimeout),
// then removes its cgroup and state directories. It is idempotent and runs
// from t.Cleanup.
func (b *Box) Close() error {
	b.closeOnce.Do(func() { b.closeErr = b.close() })
	return b.closeErr
}

func (b *Box) close() error {
	var errs []error
	b.dialOnce.Do(func() { b.dialErr = ErrBoxDown })
	if b.dialer != nil {
		b.dialer.close()
	}
	if b.pid > 0 {
		select {
		case <-b.done:
		default:
			_ = unix.Kill(b.pid, sigPowerOff)
			t := time.NewTimer(b.cfg.PowerOffTimeout)
			select {
			case <-b.done:
				t.Stop()
			case <-t.C:
				errs = append(errs, fmt.Errorf("no poweroff within %v: killed", b.cfg.PowerOffTimeout))
				_ = unix.Kill(b.pid, unix.SIGKILL) // kills the whole pid namespace
				<-b.done
			}
		}
	}
	if err := removeCgroup(b.cg); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(b.state); err != nil {
		errs = append(errs, err)
	}
	_ = os.Remove(b.cfg.StateRoot) // only when no other box uses it
	return errors.Join(errs...)
}

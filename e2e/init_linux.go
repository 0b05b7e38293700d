package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// initHelper names the test binary's role as the box's PID 1 preparer.
const initHelper = "baton-e2e-init"

// systemdBin is PID 1 of every box (through the /usr overlay, another
// version's binary when Config.SystemdTree is set).
const systemdBin = "/lib/systemd/systemd"

// boxPath is the PATH of the box's systemd and of commands run in the box.
const boxPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// initSpec is what the box's PID 1 preparer needs, passed as JSON in its
// only argument.
type initSpec struct {
	Name  string   // box name: hostname baton-e2e-NAME
	State string   // host state directory (visible until /run is mounted)
	Tree  string   // optional systemd tree overlaid on /usr
	Root  string   // optional root tree of another release, booted as /
	Share []string // host directories made visible at the same path
}

// initMain is the entry point of the re-run test binary as PID 1 of the new
// pid, mount, net, uts and ipc namespaces, already placed in the box's
// cgroup. It prepares the box's file systems and execs systemd; it only
// returns (exits) on error, which the console log shows.
func initMain() {
	// Namespace and capability changes below are per thread: everything up
	// to and including execve runs on this one.
	runtime.LockOSThread()
	var spec initSpec
	args := os.Args
	if len(args) == 0 || json.Unmarshal([]byte(args[len(args)-1]), &spec) != nil {
		fmt.Fprintln(os.Stderr, "baton-e2e init: missing or malformed spec argument")
		os.Exit(2)
	}
	err := prepare(spec)
	if err == nil {
		err = execSystemd(spec)
	}
	fmt.Fprintf(os.Stderr, "baton-e2e init: %v\n", err)
	os.Exit(1)
}

// mountSpec is one mount(2) call.
type mountSpec struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}

func (m mountSpec) do() error {
	if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil {
		return fmt.Errorf("mount %s on %s (%s): %w", m.source, m.target, m.fstype, err)
	}
	return nil
}

func mountAll(ms ...mountSpec) error {
	for _, m := range ms {
		if err := m.do(); err != nil {
			return err
		}
	}
	return nil
}

const (
	nosuidNodevNoexec = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	nosuidNodev       = unix.MS_NOSUID | unix.MS_NODEV
)

func prepare(s initSpec) error {
	// Nothing mounted from here on may propagate to the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	// The cgroup namespace is rooted where this process already is: the
	// box's cgroup directory (clone placed it there).
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
		return fmt.Errorf("unshare cgroup namespace: %w", err)
	}
	if s.Root != "" {
		if err := enterRoot(s); err != nil {
			return err
		}
	}
	if err := prepareProcSys(); err != nil {
		return err
	}
	if err := prepareDev(s.State); err != nil {
		return err
	}
	if err := prepareEtcVar(s); err != nil {
		return err
	}
	if err := sethostname("baton-e2e-" + s.Name); err != nil {
		return err
	}
	if err := loopbackUp(); err != nil {
		return err
	}
	return prepareTmpfs(s.Share)
}

// enterRoot makes a copy-on-write overlay of the release's root tree the
// box's /: the tree stays untouched (the box's writes go to its state
// directory). What the next steps need of the host stays visible at the
// same paths: /proc, /sys and /dev (which they replace with the box's
// own), the state directory and the shared directories.
func enterRoot(s initSpec) error {
	root := filepath.Join(s.State, "root")
	for _, d := range []string{root, root + ".upper", root + ".work"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := (mountSpec{
		"overlay", root, "overlay", 0,
		fmt.Sprintf("lowerdir=%s,upperdir=%s.upper,workdir=%s.work", s.Root, root, root),
	}).do(); err != nil {
		return err
	}
	binds := append([]string{"/proc", "/sys", "/dev"}, s.Share...)
	// The state directory holds the root's mount point: bound without
	// its submounts.
	binds = append(binds, s.State)
	for i, dir := range binds {
		target := filepath.Join(root, dir)
		if err := os.MkdirAll(target, 0o755); err != nil {
			return err
		}
		flags := uintptr(unix.MS_BIND | unix.MS_REC)
		if i == len(binds)-1 {
			flags = unix.MS_BIND
		}
		if err := (mountSpec{dir, target, "", flags, ""}).do(); err != nil {
			return err
		}
	}
	// pivot_root(".", "."): the old root ends up stacked on the new one,
	// and is detached at once.
	if err := unix.Chdir(root); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root to %s: %w", s.Root, err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach the host's root: %w", err)
	}
	return unix.Chdir("/")
}

// prepareProcSys mounts the new pid namespace's /proc with /proc/sys
// read-only (the host's sysctls), and a read-only sysfs of the new network
// namespace with a cgroup2 rooted at the box's cgroup.
func prepareProcSys() error {
	if err := unix.Unmount("/proc", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount host /proc: %w", err)
	}
	if err := unix.Unmount("/sys", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount host /sys: %w", err)
	}
	return mountAll(
		mountSpec{"proc", "/proc", "proc", nosuidNodevNoexec, ""},
		mountSpec{"/proc/sys", "/proc/sys", "", unix.MS_BIND, ""},
		mountSpec{"", "/proc/sys", "", unix.MS_REMOUNT | unix.MS_BIND | unix.MS_RDONLY | nosuidNodevNoexec, ""},
		mountSpec{"sysfs", "/sys", "sysfs", unix.MS_RDONLY | nosuidNodevNoexec, ""},
		mountSpec{"cgroup2", "/sys/fs/cgroup", "cgroup2", nosuidNodevNoexec, ""},
	)
}

// prepareDev builds a minimal private /dev, like a container manager's.
func prepareDev(state string) error {
	if err := unix.Unmount("/dev", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount host /dev: %w", err)
	}
	if err := (mountSpec{"tmpfs", "/dev", "tmpfs", unix.MS_NOSUID, "mode=755,size=4m"}).do(); err != nil {
		return err
	}
	nodes := []struct {
		name         string
		major, minor uint32
	}{
		{"null", 1, 3},
		{"zero", 1, 5},
		{"full", 1, 7},
		{"random", 1, 8},
		{"urandom", 1, 9},
		{"tty", 5, 0},
	}
	for _, n := range nodes {
		if err := unix.Mknod("/dev/"+n.name, unix.S_IFCHR|0o666, int(unix.Mkdev(n.major, n.minor))); err != nil {
			return fmt.Errorf("mknod /dev/%s: %w", n.name, err)
		}
		// mknod obeys the umask.
		if err := os.Chmod("/dev/"+n.name, 0o666); err != nil {
			return err
		}
	}
	for _, d := range []string{"/dev/pts", "/dev/shm", "/dev/mqueue"} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	links := [][2]string{
		{"pts/ptmx", "/dev/ptmx"},
		{"/proc/self/fd", "/dev/fd"},
		{"/proc/self/fd/0", "/dev/stdin"},
		{"/proc/self/fd/1", "/dev/stdout"},
		{"/proc/self/fd/2", "/dev/stderr"},
	}
	for _, l := range links {
		if err := os.Symlink(l[0], l[1]); err != nil {
			return err
		}
	}
	if err := os.WriteFile("/dev/console", nil, 0o600); err != nil {
		return err
	}
	return mountAll(
		mountSpec{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620,gid=5"},
		mountSpec{"tmpfs", "/dev/shm", "tmpfs", nosuidNodev, "mode=1777"},
		mountSpec{"mqueue", "/dev/mqueue", "mqueue", nosuidNodevNoexec, ""},
		mountSpec{filepath.Join(state, "console.log"), "/dev/console", "", unix.MS_BIND, ""},
	)
}

// prepareEtcVar puts copy-on-write overlays on /etc and /var, the optional
// systemd tree on /usr, and hides the host's systemd configuration.
func prepareEtcVar(s initSpec) error {
	overlay := func(dir string) mountSpec {
		up := filepath.Join(s.State, strings.TrimPrefix(dir, "/"))
		return mountSpec{
			"overlay", dir, "overlay", 0,
			fmt.Sprintf("lowerdir=%s,upperdir=%s.upper,workdir=%s.work", dir, up, up),
		}
	}
	if err := mountAll(overlay("/etc"), overlay("/var")); err != nil {
		return err
	}
	if s.Tree != "" {
		if err := (mountSpec{
			"overlay", "/usr", "overlay", unix.MS_RDONLY,
			"lowerdir=" + filepath.Join(s.Tree, "usr") + ":/usr",
		}).do(); err != nil {
			return err
		}
	}
	// Hide host-enabled units, drop-ins and generators; the box's own units
	// directory (Install writes there) becomes /etc/systemd/system.
	if err := (mountSpec{"tmpfs", "/etc/systemd", "tmpfs", 0, "mode=755"}).do(); err != nil {
		return err
	}
	for _, d := range []string{"system", "system-generators", "journald.conf.d"} {
		if err := os.Mkdir(filepath.Join("/etc/systemd", d), 0o755); err != nil {
			return err
		}
	}
	if err := (mountSpec{filepath.Join(s.State, "units"), "/etc/systemd/system", "", unix.MS_BIND, ""}).do(); err != nil {
		return err
	}
	for _, dir := range []string{"/lib/systemd/system-generators", "/usr/lib/systemd/system-generators"} {
		gens, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		for _, g := range gens {
			link := filepath.Join("/etc/systemd/system-generators", g.Name())
			if err := os.Symlink("/dev/null", link); err != nil && !errors.Is(err, os.ErrExist) {
				return err
			}
		}
	}
	if err := os.WriteFile("/etc/systemd/journald.conf.d/baton-e2e.conf",
		[]byte("[Journal]\nStorage=volatile\nRuntimeMaxUse=32M\n"), 0o644); err != nil {
		return err
	}
	id, err := os.ReadFile(filepath.Join(s.State, "machine-id"))
	if err != nil {
		return err
	}
	if err := os.WriteFile("/etc/machine-id", id, 0o444); err != nil {
		return err
	}
	return os.WriteFile("/etc/hostname", []byte("baton-e2e-"+s.Name+"\n"), 0o644)
}

func sethostname(name string) error {
	if err := unix.Sethostname([]byte(name)); err != nil {
		return fmt.Errorf("sethostname: %w", err)
	}
	return nil
}

// loopbackUp brings up the new network namespace's lo.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	return nil
}

// prepareTmpfs mounts private /run, /tmp and /var/tmp, then makes the shared
// host directories visible again at their own paths.
func prepareTmpfs(share []string) error {
	// Hold each shared directory before the tmpfs hides it.
	held := make([]int, 0, len(share))
	defer func() {
		for _, fd := range held {
			unix.Close(fd)
		}
	}()
	for _, dir := range share {
		fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open shared directory %s: %w", dir, err)
		}
		held = append(held, fd)
	}
	if err := mountAll(
		mountSpec{"tmpfs", "/run", "tmpfs", nosuidNodev, "mode=755"},
		mountSpec{"tmpfs", "/tmp", "tmpfs", nosuidNodev, "mode=1777"},
		mountSpec{"tmpfs", "/var/tmp", "tmpfs", nosuidNodev, "mode=1777"},
	); err != nil {
		return err
	}
	for i, dir := range share {
		if _, err := os.Stat(dir); err == nil {
			continue // not hidden: already the host's directory
		}
		// Only the box's own tmpfs and overlays are written here.
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		src := fmt.Sprintf("/proc/self/fd/%d", held[i])
		if err := (mountSpec{src, dir, "", unix.MS_BIND | unix.MS_REC, ""}).do(); err != nil {
			return err
		}
	}
	return nil
}

// execSystemd drops the capabilities a test box must never use on the host's
// kernel and becomes the box's systemd.
func execSystemd(s initSpec) error {
	for _, c := range []uintptr{unix.CAP_SYS_MODULE, unix.CAP_SYS_TIME, unix.CAP_WAKE_ALARM, unix.CAP_SYS_RAWIO} {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, c, 0, 0, 0); err != nil {
			return fmt.Errorf("drop capability %d: %w", c, err)
		}
	}
	env := []string{"container=baton-e2e", "PATH=" + boxPath, "LANG=C.UTF-8"}
	argv := []string{systemdBin, "--unit=" + bootTarget}
	if err := unix.Exec(systemdBin, argv, env); err != nil {
		return fmt.Errorf("exec %s: %w", systemdBin, err)
	}
	return nil
}

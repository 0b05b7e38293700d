package activation

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	sdactivation "github.com/coreos/go-systemd/v22/activation"
	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/internal/pidfs"
	"github.com/batonhq/baton/internal/testproc"
)

func TestMain(m *testing.M) {
	testproc.Register("receive", helperReceive)
	testproc.Register("go-systemd", helperGoSystemd)
	testproc.Main(m)
}

// envSelfPID asks a helper to set LISTEN_PID to its own pid before reading
// it (the parent cannot know the pid before the start).
const envSelfPID = "BATON_TEST_LISTEN_PID_SELF"

// envSelfPIDFDID asks a helper to set LISTEN_PIDFDID to the pidfs inode
// number of its own process, as systemd 258+ does.
const envSelfPIDFDID = "BATON_TEST_LISTEN_PIDFDID_SELF"

// probeFDs is how far the helpers look for open fds.
const probeFDs = 64

// report is what a helper prints as JSON on stdout.
type report struct {
	PID           int                 `json:"pid"`
	Err           string              `json:"err,omitempty"`
	NotActivated  bool                `json:"notActivated,omitempty"`
	EnvVar        string              `json:"envVar,omitempty"`
	Unsupported   bool                `json:"unsupported,omitempty"`
	EnvLeft       []string            `json:"envLeft,omitempty"`   // LISTEN_* still set after Receive
	OpenBefore    []int               `json:"openBefore"`          // fds 3.. open before Receive
	Before        map[int]string      `json:"before"`              // the same, and what they are
	CloexecBefore []int               `json:"cloexecBefore"`       // fds 3.. with FD_CLOEXEC before Receive
	After         map[int]string      `json:"after"`               // fds 3.. open after Receive, and what they are
	Closed        map[int]string      `json:"closed"`              // the same after the lookups and Set.Close
	Files         []reportFile        `json:"files,omitempty"`     // Set.Files
	Lookups       []string            `json:"lookups,omitempty"`   // one line per lookup argument
	Listeners     map[string][]string `json:"listeners,omitempty"` // go-systemd's ListenersWithNames
}

type reportFile struct {
	Name      string   `json:"name"`
	Aliases   []string `json:"aliases,omitempty"`
	FD        int      `json:"fd"`
	Kind      string   `json:"kind"`
	Listening bool     `json:"listening,omitempty"`
	Addr      string   `json:"addr,omitempty"` // network + " " + address
	Cloexec   bool     `json:"cloexec"`
	Ino       uint64   `json:"ino"`
}

func cloexecFDList() []int {
	var fds []int
	for fd := FirstFD; fd < probeFDs; fd++ {
		if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && fl&unix.FD_CLOEXEC != 0 {
			fds = append(fds, fd)
		}
	}
	return fds
}

// fdTargets maps the open fds from 3 up to what /proc says they are
// ("socket:[123]", "pipe:[45]", "anon_inode:[eventfd]", a path).
func fdTargets() map[int]string {
	m := map[int]string{}
	for _, fd := range openFDList() {
		target, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
		if err != nil {
			target = "?" + err.Error()
		}
		m[fd] = target
	}
	return m
}

func openFDList() []int {
	var fds []int
	for fd := FirstFD; fd < probeFDs; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
			fds = append(fds, fd)
		}
	}
	return fds
}

func inode(fd int) uint64 {
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return 0
	}
	return st.Ino
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return strings.TrimSpace(a.Network() + " " + a.String())
}

func leftEnv() []string {
	var left []string
	for _, v := range []string{EnvPID, "LISTEN_PIDFDID", EnvFDs, EnvNames} {
		if val, ok := os.LookupEnv(v); ok {
			left = append(left, v+"="+val)
		}
	}
	return left
}

func emit(r report) {
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
}

// initPoller makes the runtime open its poller's fds now, not during
// Receive (whose first file opened, say /proc/sys/fs/nr_open, would do it):
// the fds the helper sees open before Receive must be all there are.
func initPoller() {
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	_ = r.Close()
	_ = w.Close()
}

func setSelfPID() {
	if os.Getenv(envSelfPID) == "1" {
		_ = os.Setenv(EnvPID, strconv.Itoa(os.Getpid()))
	}
	if os.Getenv(envSelfPIDFDID) == "1" {
		id, ok := pidfs.Self()
		if !ok {
			fmt.Fprintln(os.Stderr, "no pidfs: cannot set LISTEN_PIDFDID")
			os.Exit(3)
		}
		_ = os.Setenv("LISTEN_PIDFDID", strconv.FormatUint(id, 10))
	}
}

// helperReceive calls Receive, reports what it got, runs the lookups named
// by its arguments ("listener:NAME", "listeners:NAME", "packet:NAME",
// "packets:NAME", "conn:NAME", "conns:NAME", "file:NAME", "take:NAME",
// "echo:NAME": Conn(NAME), write "hello" to it), closes the Set and reports
// which fds are left.
func helperReceive() {
	initPoller()
	setSelfPID()
	r := report{PID: os.Getpid(), OpenBefore: openFDList(), Before: fdTargets(), CloexecBefore: cloexecFDList()}
	set, err := Receive()
	r.EnvLeft = leftEnv()
	r.After = fdTargets()
	if err != nil {
		r.Err = err.Error()
		r.NotActivated = errors.Is(err, ErrNotActivated)
		r.Unsupported = errors.Is(err, errors.ErrUnsupported)
		var envErr *EnvError
		if errors.As(err, &envErr) {
			r.EnvVar = envErr.Var
		}
		if set != nil {
			r.Err += " (and a non-nil Set)"
		}
	}
	for _, f := range set.Files() {
		fl, _ := unix.FcntlInt(uintptr(f.FD), unix.F_GETFD, 0)
		r.Files = append(r.Files, reportFile{
			Name: f.Name, Aliases: f.Aliases, FD: f.FD, Kind: f.Kind.String(), Listening: f.Listening,
			Addr: addrString(f.Addr), Cloexec: fl&unix.FD_CLOEXEC != 0, Ino: inode(f.FD),
		})
	}
	var keep []io.Closer
	for _, arg := range testproc.Args() {
		op, name, _ := strings.Cut(arg, ":")
		line, closers := lookup(set, op, name)
		r.Lookups = append(r.Lookups, arg+" -> "+line)
		keep = append(keep, closers...)
	}
	if err := set.Close(); err != nil {
		r.Lookups = append(r.Lookups, "close: "+err.Error())
	}
	for _, c := range keep {
		if err := c.Close(); err != nil {
			r.Lookups = append(r.Lookups, "close taken: "+err.Error())
		}
	}
	r.Closed = fdTargets()
	emit(r)
}

func lookup(set *Set, op, name string) (string, []io.Closer) {
	var (
		addrs   []string
		closers []io.Closer
		err     error
	)
	switch op {
	case "listener":
		var l net.Listener
		if l, err = set.Listener(name); err == nil {
			addrs, closers = []string{fmt.Sprintf("%T %s", l, addrString(l.Addr()))}, []io.Closer{l}
		}
	case "listeners":
		var ls []net.Listener
		ls, err = set.Listeners(name)
		for _, l := range ls {
			addrs, closers = append(addrs, fmt.Sprintf("%T %s", l, addrString(l.Addr()))), append(closers, l)
		}
	case "packet":
		var c net.PacketConn
		if c, err = set.PacketConn(name); err == nil {
			addrs, closers = []string{fmt.Sprintf("%T %s", c, addrString(c.LocalAddr()))}, []io.Closer{c}
		}
	case "packets":
		var cs []net.PacketConn
		cs, err = set.PacketConns(name)
		for _, c := range cs {
			addrs, closers = append(addrs, fmt.Sprintf("%T %s", c, addrString(c.LocalAddr()))), append(closers, c)
		}
	case "conn", "echo":
		var c net.Conn
		if c, err = set.Conn(name); err == nil {
			addrs, closers = []string{fmt.Sprintf("%T %s", c, addrString(c.LocalAddr()))}, []io.Closer{c}
			if op == "echo" {
				if _, err := io.WriteString(c, "hello"); err != nil {
					addrs = append(addrs, "write: "+err.Error())
				}
			}
		}
	case "conns":
		var cs []net.Conn
		cs, err = set.Conns(name)
		for _, c := range cs {
			addrs, closers = append(addrs, fmt.Sprintf("%T %s", c, addrString(c.LocalAddr()))), append(closers, c)
		}
	case "file":
		var f File
		if f, err = set.File(name); err == nil {
			addrs, closers = []string{f.String()}, []io.Closer{f.File}
		}
	case "take":
		var fs []File
		fs, err = set.Take(name)
		for _, f := range fs {
			addrs, closers = append(addrs, f.String()), append(closers, f.File)
		}
	default:
		return "unknown op " + op, nil
	}
	if err != nil {
		return "error: " + err.Error() + matchable(err), nil
	}
	return strings.Join(addrs, "; "), closers
}

func matchable(err error) string {
	switch {
	case errors.Is(err, ErrNoSocket):
		return " [ErrNoSocket]"
	case errors.Is(err, ErrAmbiguous):
		return " [ErrAmbiguous]"
	}
	return ""
}

// helperGoSystemd reports what go-systemd's activation package makes of
// the same environment: Files(true) as files, or with the argument
// "listeners", ListenersWithNames.
func helperGoSystemd() {
	initPoller()
	setSelfPID()
	r := report{PID: os.Getpid(), OpenBefore: openFDList()}
	if args := testproc.Args(); len(args) > 0 && args[0] == "listeners" {
		ls, err := sdactivation.ListenersWithNames()
		if err != nil {
			r.Err = err.Error()
		}
		r.Listeners = map[string][]string{}
		for name, l := range ls {
			for _, l := range l {
				r.Listeners[name] = append(r.Listeners[name], fmt.Sprintf("%T %s", l, addrString(l.Addr())))
				_ = l.Close()
			}
		}
	} else {
		for _, f := range sdactivation.Files(true) {
			fd := int(f.Fd())
			r.Files = append(r.Files, reportFile{Name: f.Name(), FD: fd, Ino: inode(fd)})
			_ = f.Close()
		}
	}
	r.EnvLeft = leftEnv()
	r.Closed = fdTargets()
	emit(r)
}

// runHelper starts the named helper with files as fds 3.., env added to
// its environment (LISTEN_* removed from the inherited one), and decodes
// its report.
func runHelper(t *testing.T, helper string, files []*os.File, env []string, args ...string) report {
	t.Helper()
	cmd := testproc.Command(t, helper, args...)
	cmd.Env = append(withoutListenEnv(cmd.Env), env...)
	cmd.Env = append(cmd.Env, noRaceExitSleep())
	cmd.ExtraFiles = files
	return decodeReport(t, cmd)
}

// noRaceExitSleep returns a GORACE setting that keeps the options of the
// test's own but drops the race detector's default one-second sleep at
// exit, which would otherwise add a second to every helper run under -race.
func noRaceExitSleep() string {
	return "GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0")
}

func decodeReport(t *testing.T, cmd *exec.Cmd) report {
	t.Helper()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper %v: %v\n%s", cmd.Args, err, out)
	}
	var r report
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("helper output %q: %v", out, err)
	}
	return r
}

func withoutListenEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "LISTEN_") {
			out = append(out, kv)
		}
	}
	return out
}

// changed returns the fds of before that after no longer has, or has as
// something else.
func changed(before, after map[int]string) []int {
	var out []int
	for fd, target := range before {
		if after[fd] != target {
			out = append(out, fd)
		}
	}
	slices.Sort(out)
	return out
}

// stillOpen returns the fds among fds whose file (as before names it) is
// open anywhere in after. Anonymous inodes are skipped: all eventfds look
// alike, the runtime's own included.
func stillOpen(before, after map[int]string, fds []int) []int {
	open := map[string]bool{}
	for _, target := range after {
		open[target] = true
	}
	var out []int
	for _, fd := range fds {
		if t := before[fd]; open[t] && !strings.HasPrefix(t, "anon_inode:") {
			out = append(out, fd)
		}
	}
	return out
}

package spawn

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Mode selects how LISTEN_PID is made equal to the child's pid.
type Mode int

const (
	// Trampoline re-executes the calling binary, which sets LISTEN_PID and
	// execs the target. Works for any target.
	Trampoline Mode = iota
	// SelfFix execs the target directly; the target must import this
	// package, whose init sets LISTEN_PID.
	SelfFix
)

func (m Mode) String() string {
	switch m {
	case Trampoline:
		return "trampoline"
	case SelfFix:
		return "selffix"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// Environment variables used between a parent and its child.
const (
	// EnvExec carries "<ppid>:<keep>:<anchor fd>:<path>" to the
	// trampoline; keep counts the fds from 3 the child must keep, anchor is
	// "-" when there is none.
	EnvExec = "BATON_SPAWN_EXEC"
	// EnvFix carries "<ppid>:<keep>:<anchor fd>" to a SelfFix target.
	EnvFix = "BATON_SPAWN_FIX"
	// EnvStrays lists "<fd>/<dev>/<ino>" (comma-separated) for each fd the
	// parent leaked to the child by accident (not close-on-exec in the
	// parent, not one of those passed): the only fds the child's init
	// closes, and only while they still are those files. An fd opened in
	// the child before its init (cgo, LD_PRELOAD code) is not touched.
	EnvStrays = "BATON_SPAWN_STRAYS"
)

// ErrUnsupported is returned on systems other than Linux.
var ErrUnsupported = errors.New("spawn: not supported on this system")

// Config describes a process to start. Path and Args are required.
type Config struct {
	// Path is the executable; it is resolved when the process starts, so a
	// file replaced by rename is the new file.
	Path string
	// Args is the argument vector, including argv[0].
	Args []string
	// Dir is the working directory; empty means the caller's.
	Dir string
	// Env is the environment; nil means the caller's. LISTEN_PID,
	// LISTEN_PIDFDID, LISTEN_FDS, LISTEN_FDNAMES and this package's
	// markers are replaced.
	Env []string
	// Files are passed at fds 3, 4, ... and counted in LISTEN_FDS. When
	// Files is empty no LISTEN_ variables are set.
	Files []*os.File
	// Names are the LISTEN_FDNAMES entries, one per file (no ':'). Nil
	// leaves LISTEN_FDNAMES unset.
	Names []string
	// Extra files follow Files (at 3+len(Files), ...) and are not counted
	// in LISTEN_FDS; the caller tells the child about them.
	Extra []*os.File
	// Anchor, when set, is one of Extra: a unix socket the caller created
	// (socketpair); the child checks its peer credentials to recognise the
	// marker even when the caller died before the child's init ran.
	Anchor *os.File
	// Stdin, Stdout, Stderr: nil means /dev/null.
	Stdin, Stdout, Stderr *os.File
	// Mode selects how LISTEN_PID is set (default Trampoline).
	Mode Mode
	// NewProcessGroup makes the child the leader of a process group of its
	// own, whose id is the child's pid (setpgid(2) between fork and exec;
	// the group survives the trampoline's exec). Signals a terminal sends
	// to the caller's group (Ctrl-C, Ctrl-\) then no longer reach the
	// child, and kill(-pid, sig) reaches the child and every process it
	// starts that stays in its group. False (the zero value) leaves the
	// child in the caller's group.
	NewProcessGroup bool
}

// FD returns the descriptor number the child sees for Extra[i].
func (c *Config) FD(i int) int { return 3 + len(c.Files) + i }

// env builds the child's environment. self is the parent's pid.
func (c *Config) env(self int) ([]string, error) {
	if c.Names != nil && len(c.Names) != len(c.Files) {
		return nil, fmt.Errorf("spawn: %d names for %d files", len(c.Names), len(c.Files))
	}
	for _, n := range c.Names {
		if strings.ContainsRune(n, ':') {
			return nil, fmt.Errorf("spawn: fd name %q contains ':'", n)
		}
	}
	// LISTEN_PIDFDID of the caller (or of the manager that started it) is
	// never passed on: the child's own is set by its init or the
	// trampoline, the only places that can know it.
	env := EnvWithout(c.Env, "LISTEN_PID", "LISTEN_PIDFDID", "LISTEN_FDS", "LISTEN_FDNAMES", EnvExec, EnvFix, EnvStrays)
	anchor := "-"
	if c.Anchor != nil {
		i := slices.Index(c.Extra, c.Anchor)
		if i < 0 {
			return nil, fmt.Errorf("spawn: the anchor %s is not one of the extra files", c.Anchor.Name())
		}
		anchor = strconv.Itoa(c.FD(i))
	}
	marker := strconv.Itoa(self) + ":" + strconv.Itoa(len(c.Files)+len(c.Extra)) + ":" + anchor
	switch c.Mode {
	case Trampoline:
		env = append(env, EnvExec+"="+marker+":"+c.Path)
	case SelfFix:
		env = append(env, EnvFix+"="+marker)
	default:
		return nil, fmt.Errorf("spawn: unknown mode %d", int(c.Mode))
	}
	if len(c.Files) > 0 {
		// The placeholder never equals the child's pid: a child that does
		// not fix it sees "not activated", never someone else's fds.
		env = append(env, "LISTEN_PID="+strconv.Itoa(self), "LISTEN_FDS="+strconv.Itoa(len(c.Files)))
		if c.Names != nil {
			env = append(env, "LISTEN_FDNAMES="+strings.Join(c.Names, ":"))
		}
	}
	return env, nil
}

// marker is a parsed EnvExec or EnvFix value.
type marker struct {
	ppid   int
	keep   int    // fds 3 .. 3+keep-1 belong to the child
	anchor int    // -1 when none
	path   string // EnvExec only
}

// parseMarker parses "<ppid>:<keep>:<anchor>" and, withPath, ":<path>".
func parseMarker(v string, withPath bool) (marker, bool) {
	n := 3
	if withPath {
		n = 4
	}
	f := strings.SplitN(v, ":", n)
	if len(f) != n {
		return marker{}, false
	}
	var m marker
	var err1, err2 error
	m.ppid, err1 = strconv.Atoi(f[0])
	m.keep, err2 = strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || m.ppid <= 0 || m.keep < 0 {
		return marker{}, false
	}
	m.anchor = -1
	if f[2] != "-" {
		a, err := strconv.Atoi(f[2])
		if err != nil || a < 3 || a >= 3+m.keep {
			return marker{}, false
		}
		m.anchor = a
	}
	if withPath {
		if f[3] == "" {
			return marker{}, false
		}
		m.path = f[3]
	}
	return m, true
}

// EnvWithout returns env (os.Environ() when nil) without the variables
// named keys, in a new slice with room for a few more.
func EnvWithout(env []string, keys ...string) []string {
	if env == nil {
		env = os.Environ()
	}
	out := make([]string, 0, len(env)+5)
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); !slices.Contains(keys, k) {
			out = append(out, kv)
		}
	}
	return out
}

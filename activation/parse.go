package activation

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// The activation variables (sd_listen_fds(3)).
const (
	EnvPID   = "LISTEN_PID"
	EnvFDs   = "LISTEN_FDS"
	EnvNames = "LISTEN_FDNAMES"
	// EnvPIDFDID is the inode number of a pidfd of the process the fds
	// are for (systemd 258 and later): unlike a pid, it is never reused.
	EnvPIDFDID = "LISTEN_PIDFDID"
)

// Names systemd gives fds it has no FileDescriptorName= for.
const (
	NameUnknown    = "unknown"    // LISTEN_FDNAMES not set
	NameConnection = "connection" // the connected socket of an Accept=yes service
	NameStored     = "stored"     // an fd-store entry saved without FDNAME=
)

const (
	// FirstFD is the first inherited fd (SD_LISTEN_FDS_START).
	FirstFD = 3
	// MaxFDs is the largest count LISTEN_FDS may hold (INT_MAX - 3), as in
	// libsystemd.
	MaxFDs = math.MaxInt32 - FirstFD
	// MaxNameLen is the longest name LISTEN_FDNAMES may hold (FDNAME_MAX).
	MaxNameLen = 255
)

// environ is what the variables held: has* reports presence, as an empty
// value is not an absent one.
type environ struct {
	pid, pidfdID, fds, names             string
	hasPID, hasPIDFDID, hasFDs, hasNames bool
}

// selfID returns the inode number of a pidfd of this process, and false
// when the kernel cannot tell it (no pidfd_open, or pidfds without pidfs:
// before Linux 6.9): then LISTEN_PIDFDID is not checked, as in libsystemd.
type selfID func() (uint64, bool)

// parse decides from the variables alone, without touching an fd, whether
// they are for process self, and returns the fd count and one name per fd,
// or nil names when LISTEN_FDNAMES is not set (every name is then
// NameUnknown; the slice is not built here, as the count may be huge before
// the fds are checked). Its order follows sd_listen_fds_with_names:
// LISTEN_PID first (absent or another process: not activated), then
// LISTEN_PIDFDID when set (another process's pidfd: not activated), then
// LISTEN_FDS, then the names. id is only called when LISTEN_PIDFDID is set
// and LISTEN_PID is this process's.
func parse(env environ, self int, id selfID) (n int, names []string, err error) {
	if !env.hasPID {
		return 0, nil, fmt.Errorf("%w: %s is not set", ErrNotActivated, EnvPID)
	}
	pid, err := parsePID(env.pid)
	if err != nil {
		return 0, nil, &EnvError{Var: EnvPID, Value: env.pid, Err: err}
	}
	if pid != int64(self) {
		return 0, nil, fmt.Errorf("%w: %s=%d is another process (this is %d)", ErrNotActivated, EnvPID, pid, self)
	}
	if env.hasPIDFDID {
		want, err := parseInode(env.pidfdID)
		if err != nil {
			return 0, nil, &EnvError{Var: EnvPIDFDID, Value: env.pidfdID, Err: err}
		}
		if own, ok := id(); ok && own != want {
			return 0, nil, fmt.Errorf("%w: %s=%d is another process's pidfd (this process's is %d)",
				ErrNotActivated, EnvPIDFDID, want, own)
		}
	}
	if !env.hasFDs {
		return 0, nil, fmt.Errorf("%w: %s=%d but %s is not set", ErrNotActivated, EnvPID, pid, EnvFDs)
	}
	n, err = parseCount(env.fds)
	if err != nil {
		return 0, nil, &EnvError{Var: EnvFDs, Value: env.fds, Err: err}
	}
	if !env.hasNames {
		return n, nil, nil
	}
	names, err = parseNames(env.names, n)
	if err != nil {
		return 0, nil, &EnvError{Var: EnvNames, Value: env.names, Err: err}
	}
	return n, names, nil
}

var (
	errEmpty       = errors.New("empty")
	errNotNumber   = errors.New("not a decimal number")
	errLeadingZero = errors.New("leading zero (octal to libsystemd, decimal to others)")
)

// parseDecimal accepts an optional '-' and ASCII digits without a leading
// zero, nothing else. libsystemd's parser (strtol with base 0) also takes
// blanks, '+', "0x", "0o", "0b" and reads "010" as 8, where go-systemd
// reads 10: every such form is refused rather than read one way or the
// other; systemd itself writes plain decimal. A value that does not fit an
// int64 is clamped to MinInt64 or MaxInt64: out of range either way.
func parseDecimal(s string) (v int64, err error) {
	if s == "" {
		return 0, errEmpty
	}
	digits := strings.TrimPrefix(s, "-")
	if digits == "" {
		return 0, errNotNumber
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, errNotNumber
		}
	}
	if len(digits) > 1 && digits[0] == '0' {
		return 0, errLeadingZero
	}
	v, err = strconv.ParseInt(s, 10, 64)
	if err != nil { // only a range error is left: clamp, keeping the sign
		if s[0] == '-' {
			return math.MinInt64, nil
		}
		return math.MaxInt64, nil
	}
	return v, nil
}

func parsePID(s string) (int64, error) {
	v, err := parseDecimal(s)
	switch {
	case err != nil:
		return 0, err
	case v < 1:
		return 0, errors.New("not a process id: below 1")
	case v > math.MaxInt32:
		return 0, fmt.Errorf("not a process id: above %d", math.MaxInt32)
	}
	return v, nil
}

// parseInode reads an inode number: plain decimal, 1 to 2^64-1 (pidfs
// never gives inode 0).
func parseInode(s string) (uint64, error) {
	v, err := parseDecimal(s)
	switch {
	case err != nil:
		return 0, err
	case s[0] == '-':
		return 0, errors.New("negative, not an inode number")
	case v == 0:
		return 0, errors.New("zero, not an inode number")
	}
	u, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, errors.New("above 18446744073709551615, not an inode number")
	}
	return u, nil
}

func parseCount(s string) (int, error) {
	v, err := parseDecimal(s)
	switch {
	case err != nil:
		return 0, err
	case v < 0:
		return 0, errors.New("negative, need at least 1 fd")
	case v == 0:
		return 0, errors.New("zero, need at least 1 fd")
	case v > MaxFDs:
		return 0, fmt.Errorf("more than the %d fds possible", MaxFDs)
	}
	return int(v), nil
}

// parseNames splits LISTEN_FDNAMES on ':' keeping empty fields, as
// libsystemd does (an empty value is one empty name). Each name must be a
// valid fd name (systemd's fdname_is_valid): at most 255 bytes of printable
// ASCII; libsystemd hands out any name, systemd never sets an invalid one.
func parseNames(s string, n int) ([]string, error) {
	if count := strings.Count(s, ":") + 1; count != n {
		plural := "s"
		if count == 1 {
			plural = ""
		}
		return nil, fmt.Errorf("%d name%s for %s=%d", count, plural, EnvFDs, n)
	}
	names := strings.Split(s, ":")
	for i, name := range names {
		if err := checkName(name); err != nil {
			return nil, fmt.Errorf("name for fd %d %w", FirstFD+i, err)
		}
	}
	return names, nil
}

// checkName applies the byte rules of a name (its length, printable
// ASCII) that LISTEN_FDNAMES entries and CheckName share.
func checkName(name string) error {
	if len(name) > MaxNameLen {
		return fmt.Errorf("is %d bytes, more than %d", len(name), MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c < ' ' || c == 0x7f:
			return fmt.Errorf("has control character %q at byte %d", c, i)
		case c > 0x7f:
			return fmt.Errorf("has non-ASCII byte 0x%02x at byte %d", c, i)
		}
	}
	return nil
}

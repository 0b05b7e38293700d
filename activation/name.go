package activation

import (
	"errors"
	"fmt"
)

// CheckName reports whether name can be a socket's name in LISTEN_FDNAMES
// (FileDescriptorName=, FDNAME=) that every receiver accepts: this
// package, libsystemd, and systemd's own fdname_is_valid. That is 1 to
// MaxNameLen bytes of printable ASCII without ':', the separator. It is the
// one rule of baton: handoff, units and `baton run` check names with it,
// so that no name a process sends is refused by its successor.
func CheckName(name string) error {
	bad := func(why error) error {
		return fmt.Errorf("socket name %q: %w: %w (want 1-%d bytes of printable ASCII without ':', the LISTEN_FDNAMES separator)", name, ErrBadName, why, MaxNameLen)
	}
	if name == "" {
		return bad(errors.New("empty"))
	}
	if err := checkName(name); err != nil {
		return bad(err)
	}
	for i := 0; i < len(name); i++ {
		if name[i] == ':' {
			return bad(fmt.Errorf("has ':' at byte %d", i))
		}
	}
	return nil
}

// ErrBadName is wrapped by CheckName's errors.
var ErrBadName = errors.New("invalid socket name")

package handoff

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// procRef names one process for good: a pid and the process's start time
// (/proc/PID/stat field 22, clock ticks since boot), which a later process
// given the same pid does not share.
type procRef struct {
	gen   int
	pid   int
	start uint64
}

// maxListed bounds the draining list a successor accepts.
const maxListed = 1024

// formatDraining is the value of BATON_HANDOFF_DRAINING for list.
func formatDraining(list []procRef) string {
	parts := make([]string, len(list))
	for i, p := range list {
		parts[i] = fmt.Sprintf("%d:%d:%d", p.gen, p.pid, p.start)
	}
	return strings.Join(parts, ",")
}

var errDrainingList = errors.New("want GEN:PID:START,... with increasing generations below this one's, the predecessor last")

// parseDraining reads BATON_HANDOFF_DRAINING in generation gen, whose
// predecessor has pid parent: every field decimal digits, generations
// increasing from 1, the last entry the predecessor (gen-1, parent), no
// entry naming this process, start times above zero.
func parseDraining(v string, gen, parent int) ([]procRef, error) {
	entries := strings.Split(v, ",")
	if len(entries) > maxListed {
		return nil, fmt.Errorf("%d entries, at most %d: %w", len(entries), maxListed, errDrainingList)
	}
	list := make([]procRef, 0, len(entries))
	self := os.Getpid()
	for _, e := range entries {
		f := strings.Split(e, ":")
		if len(f) != 3 {
			return nil, fmt.Errorf("entry %q: %w", e, errDrainingList)
		}
		g, err1 := decimal(f[0])
		pid, err2 := decimal(f[1])
		start, err3 := strconv.ParseUint(f[2], 10, 64)
		if err := errors.Join(err1, err2, err3); err != nil || !digits(f[2]) || f[2][0] == '0' {
			return nil, fmt.Errorf("entry %q: %w", e, errDrainingList)
		}
		p := procRef{gen: g, pid: pid, start: start}
		switch {
		case p.gen < 1 || p.gen >= gen || len(list) > 0 && p.gen <= list[len(list)-1].gen,
			p.pid < 1 || p.pid == self, p.start == 0:
			return nil, fmt.Errorf("entry %q: %w", e, errDrainingList)
		}
		list = append(list, p)
	}
	if last := list[len(list)-1]; last.gen != gen-1 || last.pid != parent {
		return nil, fmt.Errorf("last entry %d:%d is not the predecessor %d:%d: %w", last.gen, last.pid, gen-1, parent, errDrainingList)
	}
	return list, nil
}

// decimal parses a non-negative int written in decimal digits only (no
// sign, no space), without a leading zero, so that every value has one
// spelling.
func decimal(s string) (int, error) {
	if !digits(s) || len(s) > 1 && s[0] == '0' {
		return 0, strconv.ErrSyntax
	}
	return strconv.Atoi(s)
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

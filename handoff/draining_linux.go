package handoff

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// procStart returns the start time of pid (/proc/PID/stat field 22) and
// whether the process still runs (exists and is not a zombie).
func procStart(pid int) (start uint64, running bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// pid (comm) state ppid ...: comm may hold spaces and parentheses,
	// the last ')' ends it. Field 3 (state) is the first after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, false
	}
	start, err = strconv.ParseUint(f[22-3], 10, 64)
	if err != nil {
		return 0, false
	}
	return start, f[0] != "Z" && f[0] != "X"
}

// running reports whether p is still the process it names and runs.
func (p procRef) running() bool {
	start, ok := procStart(p.pid)
	return ok && start == p.start
}

// forceClose sends SIGKILL to p when it still is the process it names,
// through a pidfd opened before the start time is compared, so that the
// signal cannot reach a process that took the pid meanwhile. It waits up
// to exitGrace for the exit and reports whether it killed.
func (p procRef) forceClose() (bool, error) {
	fd, err := unix.PidfdOpen(p.pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("pidfd_open: %w", err)
	}
	defer unix.Close(fd)
	if !p.running() {
		return false, nil // gone, or the pid is another process's now
	}
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return false, nil
		}
		return false, fmt.Errorf("pidfd_send_signal: %w", err)
	}
	(&watched{pidfd: fd}).wait(exitGrace)
	return true, nil
}

// capDraining applies Config.MaxDraining before an upgrade: it drops the
// draining generations that are gone and force-closes the oldest of the
// others while they, plus this generation, would be more than the cap. It
// returns what it did for STATUS=, "" when nothing.
func (u *Upgrader) capDraining() string {
	live := make([]procRef, 0, len(u.draining))
	for _, p := range u.draining {
		// PID 1 of the namespace stays as its init once it handed over
		// (init_linux.go): not draining, and beyond a SIGKILL from here.
		if p.running() && p.pid != 1 {
			live = append(live, p)
		}
	}
	var notes []string
	if limit := u.cfg.maxDraining(); limit > 0 {
		for len(live) > 0 && len(live)+1 > limit {
			p := live[0]
			live = live[1:]
			killed, err := p.forceClose()
			if err != nil {
				u.log.Warn("force-close of a draining generation", "generation", p.gen, "pid", p.pid, "err", err)
				continue
			}
			if killed {
				msg := fmt.Sprintf("force-closed draining generation %d (pid %d): MaxDraining=%d", p.gen, p.pid, limit)
				u.log.Warn(msg, "generation", p.gen, "pid", p.pid, "max_draining", limit)
				notes = append(notes, msg)
			}
		}
	}
	u.draining = live
	return strings.Join(notes, "; ")
}

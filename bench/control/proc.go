package control

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrGone is returned for a process that no longer exists.
var ErrGone = errors.New("process gone")

// State reports whether pid exists and whether it has exited (a zombie, or
// no longer in /proc).
func State(pid int) (exited bool, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errESRCH) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	// pid (comm) S ...: comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	st := b[i+2]
	return st == 'Z' || st == 'X', nil
}

// FDCount is the number of open file descriptors of pid.
func FDCount(pid int) (int, error) {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("fd count of %d: %w", pid, ErrGone)
	}
	if err != nil {
		return 0, fmt.Errorf("fd count of %d: %w", pid, err)
	}
	return len(ents), nil
}

// RSSKiB is the resident set size (VmRSS) of pid in KiB.
func RSSKiB(pid int) (int, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("rss of %d: %w", pid, ErrGone)
	}
	if err != nil {
		return 0, fmt.Errorf("rss of %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				return 0, fmt.Errorf("rss of %d: parse %q: %w", pid, v, err)
			}
			return kb, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("rss of %d: %w", pid, err)
	}
	return 0, fmt.Errorf("rss of %d: no VmRSS (%w)", pid, ErrGone)
}

// ReadPidfile reads a pid from a file holding a decimal pid and a newline.
func ReadPidfile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pidfile %s: bad pid %q", path, b)
	}
	return pid, nil
}

var errESRCH = syscall.ESRCH

// userHZ is the unit of the times in /proc/PID/stat (USER_HZ, 100 on
// every Linux architecture Go supports).
const userHZ = 100

// CPUTime is the user plus system CPU time pid has used, all its threads
// included, at the kernel's 10 ms accounting resolution.
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("cpu time of %d: %w", pid, ErrGone)
	}
	if err != nil {
		return 0, fmt.Errorf("cpu time of %d: %w", pid, err)
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("cpu time of %d: parse /proc/%d/stat", pid, pid)
	}
	// After "pid (comm) ": state is field 3, utime 14 and stime 15.
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("cpu time of %d: short /proc/%d/stat", pid, pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("cpu time of %d: parse utime %q stime %q", pid, f[11], f[12])
	}
	return time.Duration(ut+st) * time.Second / userHZ, nil
}

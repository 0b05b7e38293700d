package handoff

import "golang.org/x/sys/unix"

// monotonicNS is CLOCK_MONOTONIC in nanoseconds (0 when unreadable).
func monotonicNS() int64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) != nil {
		return 0
	}
	return ts.Nano()
}

package notify

import (
	"os"
	"time"
)

// sysenv is the seam between the package and the process: the clock, the
// pids and the environment. Tests replace it to be deterministic.
type sysenv struct {
	monotonic func() (time.Duration, error) // CLOCK_MONOTONIC since boot
	getpid    func() int
	getppid   func() int
	lookupEnv func(key string) (string, bool)
	setenv    func(key, value string) error
	// newTicker starts the watchdog's ticker; tests under synctest use the
	// real one, whose time is the bubble's.
	newTicker func(d time.Duration) (<-chan time.Time, func())
}

var defaultSys = &sysenv{
	monotonic: monotonicNow,
	getpid:    os.Getpid,
	getppid:   os.Getppid,
	lookupEnv: os.LookupEnv,
	setenv:    os.Setenv,
	newTicker: func(d time.Duration) (<-chan time.Time, func()) {
		t := time.NewTicker(d)
		return t.C, t.Stop
	},
}

var (
	noDeadline   time.Time
	aLongTimeAgo = time.Unix(1, 0)
)

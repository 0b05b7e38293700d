package notify

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"
)

// WatchdogConfig says whose watchdog this process takes as its own. The
// zero value follows sd_watchdog_enabled(3): the watchdog is ours when
// WATCHDOG_USEC is set and WATCHDOG_PID is unset or equals our pid.
type WatchdogConfig struct {
	// ClaimFromParent also takes the watchdog when WATCHDOG_PID names this
	// process's parent (getppid). It is for a successor generation started
	// by the current main process, which is about to hand the main PID to
	// it: the inherited WATCHDOG_PID is the parent's, and once the hand-over
	// is done only the successor's pings count.
	//
	// RunWatchdog, when it claims the watchdog this way, sets WATCHDOG_PID
	// in the process environment to our own pid, so that our own successor
	// can claim it in turn. A parent that has already exited is no longer
	// our parent (getppid names the reaper): claim before the parent exits.
	// Leave it false in a process that merely inherits the variables from a
	// service it does not replace (a helper program, a shell): it must not
	// ping for the service.
	ClaimFromParent bool

	// OnError, when set, is called by RunWatchdog with each ping that
	// failed (to log it); the next ping is sent at the next tick anyway.
	OnError func(error)

	sys *sysenv // nil: the real process
}

func (cfg WatchdogConfig) env() *sysenv {
	if cfg.sys != nil {
		return cfg.sys
	}
	return defaultSys
}

// WatchdogEnabled returns the watchdog timeout the manager set for this
// process (WATCHDOG_USEC), or 0 when it expects no pings from us:
// WATCHDOG_USEC unset, or WATCHDOG_PID naming another process (other than
// our parent with ClaimFromParent). A malformed WATCHDOG_USEC or
// WATCHDOG_PID is an *EnvError. It changes nothing in the environment.
func WatchdogEnabled(cfg WatchdogConfig) (time.Duration, error) {
	timeout, _, err := watchdogState(cfg)
	return timeout, err
}

// watchdogState also reports whether the watchdog is ours by claim from
// the parent.
func watchdogState(cfg WatchdogConfig) (timeout time.Duration, claimed bool, err error) {
	sys := cfg.env()
	usec, ok := sys.lookupEnv(EnvWatchdogUsec)
	if !ok {
		return 0, false, nil
	}
	u, err := strconv.ParseUint(usec, 10, 64)
	if err != nil || u == 0 || u > math.MaxInt64/uint64(time.Microsecond) {
		return 0, false, &EnvError{Var: EnvWatchdogUsec, Value: usec, Err: fmt.Errorf("%w: not a positive number of microseconds", ErrBadEnv)}
	}
	timeout = time.Duration(u) * time.Microsecond

	pidStr, ok := sys.lookupEnv(EnvWatchdogPID)
	if !ok {
		return timeout, false, nil
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 {
		return 0, false, &EnvError{Var: EnvWatchdogPID, Value: pidStr, Err: fmt.Errorf("%w: not a pid", ErrBadEnv)}
	}
	switch {
	case pid == sys.getpid():
		return timeout, false, nil
	case cfg.ClaimFromParent && pid == sys.getppid():
		return timeout, true, nil
	}
	return 0, false, nil
}

// RunWatchdog pings the manager (WATCHDOG=1) at once and then every half
// of the watchdog timeout until ctx ends, and returns nil then. It returns
// nil at once when the Client is disabled or the watchdog is not ours (see
// WatchdogEnabled and WatchdogConfig.ClaimFromParent), and an *EnvError
// for malformed variables. A failed ping (a full socket buffer, a manager
// being re-executed) is passed to OnError and retried at the next tick;
// only failures that last a whole watchdog timeout, the ping at once and
// two more in a row, end RunWatchdog with the last one's error: by then
// the manager has given up on the process anyway. It blocks: run it in a
// goroutine that the caller joins.
func (c *Client) RunWatchdog(ctx context.Context, cfg WatchdogConfig) error {
	if !c.Enabled() || ctx.Err() != nil {
		return nil
	}
	timeout, claimed, err := watchdogState(cfg)
	if err != nil || timeout == 0 {
		return err
	}
	sys := cfg.env()
	if claimed {
		if err := sys.setenv(EnvWatchdogPID, strconv.Itoa(sys.getpid())); err != nil {
			return fmt.Errorf("notify: claim watchdog: %w", err)
		}
	}
	tick, stop := sys.newTicker(timeout / 2)
	defer stop()
	failed := 0
	for {
		if err := c.Watchdog(); err != nil {
			failed++
			if cfg.OnError != nil {
				cfg.OnError(err)
			}
			if failed >= persistentFailures {
				return fmt.Errorf("notify: watchdog: %d pings in a row failed: %w", failed, err)
			}
		} else {
			failed = 0
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
		}
	}
}

// persistentFailures failed pings, half a timeout apart, span a whole
// watchdog timeout.
const persistentFailures = 3

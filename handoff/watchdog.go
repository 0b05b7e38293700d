package handoff

import (
	"context"

	"github.com/batonhq/baton/notify"
)

// startWatchdog pings the manager at half of WATCHDOG_USEC while the
// watchdog is this process's (notify.RunWatchdog: WATCHDOG_PID unset or
// ours; a successor makes it its own).
func (u *Upgrader) startWatchdog(mgr notifier) {
	u.watchMu.Lock()
	defer u.watchMu.Unlock()
	if u.stopWatch != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	u.wg.Go(func() {
		defer close(done)
		cfg := notify.WatchdogConfig{OnError: func(err error) { u.log.Warn("watchdog ping failed, retrying at the next tick", "err", err) }}
		if err := mgr.RunWatchdog(ctx, cfg); err != nil {
			u.log.Warn("watchdog", "err", err)
		}
	})
	u.stopWatch = func() { cancel(); <-done }
}

// stopWatchdog stops the pings; once it returns none is in flight.
func (u *Upgrader) stopWatchdog() {
	u.watchMu.Lock()
	stop := u.stopWatch
	u.stopWatch = nil
	u.watchMu.Unlock()
	if stop != nil {
		stop()
	}
}

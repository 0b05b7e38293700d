package handoff

import "context"

// notifier is what this package needs from an sd_notify client. Every
// method is a no-op when the process has no manager.
type notifier interface {
	Ready() error
	Reloading() error // RELOADING=1 with MONOTONIC_USEC
	Stopping() error
	Status(string) error
	Send(state string) error
	HandOver(pid int) error // MAINPID=pid and READY=1 in one datagram
	Barrier(ctx context.Context) error
	Watchdog() error
	Close() error
}

package handoff

import (
	"context"
	"os"

	"github.com/batonhq/baton/notify"
)

// notifier is what this package needs from an sd_notify client
// (*notify.Client); the seam lets tests inject failures. Every method is a
// no-op when the process has no manager.
type notifier interface {
	Ready() error
	Reloading() error // RELOADING=1 with MONOTONIC_USEC
	Stopping() error
	Status(string) error
	Send(state string) error
	HandOver(pid int) error // MAINPID=pid and READY=1 in one datagram
	Barrier(ctx context.Context) error
	RunWatchdog(ctx context.Context, cfg notify.WatchdogConfig) error
	FDStore(name string, files ...*os.File) error
	FDStoreRemove(name string) error
	Close() error
}

// dialNotifier returns the manager's client: a no-op one when there is no
// manager.
func dialNotifier(socket string) (notifier, error) {
	if socket == "" {
		return (*notify.Client)(nil), nil
	}
	return notify.Dial(socket)
}

package handoff

import (
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"golang.org/x/sys/unix"
)

// PID 1 of a pid namespace (a container whose entrypoint is the server)
// cannot hand over and exit like any other generation: when it exits, the
// kernel kills every process in the namespace, its successor too. So a
// generation that is PID 1 stays, once it has handed over and drained, as
// the namespace's init (serveAsInit): its servers are drained and its
// sockets closed; it reaps every process that ends (successors are
// reparented to it when their predecessor exits), passes SIGTERM, SIGINT,
// SIGQUIT and SIGHUP to every other process in the namespace (the serving
// generation upgrades on SIGHUP, stops on SIGTERM; draining ones go on
// draining), and exits when the last one is gone, with that one's status.
//
// It stays in this process rather than re-executing a small init: a
// signal that arrived between the exec and the new image's handlers would
// be dropped (the kernel discards signals that PID 1 does not handle).
// From the hand-over on, the signal goroutine forwards instead of acting
// (signals in upgrader_linux.go), so there is no gap.

// serveAsInit closes what this generation holds, reaps and forwards
// until no other process is left, and exits the process with the last
// one's status (128+n for a signal). It does not return.
func (u *Upgrader) serveAsInit() {
	u.log.Info("handed over as PID 1: staying as the namespace's init", "successor", u.successorPID())
	sigs := make(chan os.Signal, 16)
	forward := []os.Signal{syscall.SIGQUIT}
	if u.cfg.NoSignals {
		forward = append(forward, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	}
	signal.Notify(sigs, append(forward, syscall.SIGCHLD)...)
	u.fds.close()
	u.mu.Lock()
	if u.mgr != nil {
		_ = u.mgr.Close()
		u.mgr = nil
	}
	u.mu.Unlock()
	debug.FreeOSMemory()
	status := 0
	for {
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if err == unix.EINTR {
				continue
			}
			if err == unix.ECHILD {
				u.log.Info("init: no process left", "status", status)
				os.Exit(status)
			}
			if pid <= 0 {
				break
			}
			switch {
			case ws.Exited():
				status = ws.ExitStatus()
			case ws.Signaled():
				status = 128 + int(ws.Signal())
			}
		}
		if s := (<-sigs).(syscall.Signal); s != syscall.SIGCHLD {
			_ = unix.Kill(-1, s) // every process of the namespace but this one
		}
	}
}

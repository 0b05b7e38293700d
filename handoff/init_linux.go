package handoff

import (
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
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
// until no other process is left, and exits the process with the status
// of the newest of them, the serving generation (128+n for a signal;
// older ones may die of a forwarded SIGHUP once their drain is over). It
// does not return.
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
	var last exitRecord
	for {
		for _, pid := range zombies() {
			start, _ := procStart(pid)
			var ws unix.WaitStatus
			if got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); err == nil && got == pid {
				last = last.later(exitRecord{start: start, status: exitCode(ws)})
				u.log.Info("init: reaped", "pid", pid, "status", exitCode(ws))
			}
		}
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if err == unix.EINTR {
				continue
			}
			if err == unix.ECHILD {
				u.log.Info("init: no process left", "status", last.status)
				os.Exit(last.status)
			}
			if pid <= 0 {
				break
			}
			// Not seen as a zombie above (no /proc children list): its
			// start time is unknown.
			last = last.later(exitRecord{status: exitCode(ws)})
		}
		if s := (<-sigs).(syscall.Signal); s != syscall.SIGCHLD {
			_ = unix.Kill(-1, s) // every process of the namespace but this one
		}
	}
}

// exitRecord is a reaped process: when it started, how it ended.
type exitRecord struct {
	start  uint64 // clock ticks since boot; 0 when unknown
	status int
	seen   bool
}

// later returns the record of the process that started last.
func (r exitRecord) later(o exitRecord) exitRecord {
	if !r.seen || o.start >= r.start {
		o.seen = true
		return o
	}
	return r
}

func exitCode(ws unix.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return 0
}

// zombies lists this process's children that have exited and wait to be
// reaped, from /proc/self/task/*/children.
func zombies() []int {
	tasks, _ := os.ReadDir("/proc/self/task")
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				continue
			}
			if _, running := procStart(pid); !running {
				out = append(out, pid)
			}
		}
	}
	return out
}

//go:build unix

package control

import "syscall"

func kill(pid int, sig syscall.Signal) error { return syscall.Kill(pid, sig) }

// reap collects the exit status of pid if it is a zombie child of this
// process; for anything else it does nothing.
func reap(pid int) {
	var ws syscall.WaitStatus
	_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil) // ECHILD: not ours
}

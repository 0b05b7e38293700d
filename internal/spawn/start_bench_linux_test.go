//go:build linux

package spawn

import (
	"os"
	"syscall"
	"testing"
)

// BenchmarkStartPath compares Start in the mode handoff uses (SelfFix:
// environment, dups, the stray-fd scan, then fork+exec of the target
// itself) with a plain fork+exec of the same program, each reaped the
// same way: Start's own path must cost no more than the fork+exec.
// (Trampoline, the default, execs the calling binary first and costs a
// Go program's start more.)
func BenchmarkStartPath(b *testing.B) {
	const prog = "/bin/true"
	if _, err := os.Stat(prog); err != nil {
		b.Skip(prog, ":", err)
	}
	b.Run("forkexec", func(b *testing.B) {
		for b.Loop() {
			pid, err := syscall.ForkExec(prog, []string{"true"}, &syscall.ProcAttr{Files: []uintptr{0, 1, 2}})
			if err != nil {
				b.Fatal(err)
			}
			var ws syscall.WaitStatus
			if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("spawn", func(b *testing.B) {
		for b.Loop() {
			p, err := Start(&Config{Path: prog, Args: []string{"true"}, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Mode: SelfFix})
			if err != nil {
				b.Fatal(err)
			}
			// Reaped as the fork+exec case is (os.Process.Wait parks on
			// its pidfd: slower, and not what is measured here).
			var ws syscall.WaitStatus
			if _, err := syscall.Wait4(p.Pid, &ws, 0, nil); err != nil {
				b.Fatal(err)
			}
			_ = p.Release()
		}
	})
}

//go:build unix

package generation

import (
	"syscall"
	"testing"
)

// A WaitStatus is a number only on Unix systems.
func TestStoppedLike(t *testing.T) {
	for _, tt := range []struct {
		name string
		ws   syscall.WaitStatus
		want bool
	}{
		{"SIGTERM", syscall.WaitStatus(syscall.SIGTERM), true},
		{"SIGINT", syscall.WaitStatus(syscall.SIGINT), true},
		{"SIGKILL", syscall.WaitStatus(syscall.SIGKILL), false},
		{"exit 0", syscall.WaitStatus(0), true},
		{"exit 1", syscall.WaitStatus(1 << 8), false},
	} {
		if got := StoppedLike(tt.ws); got != tt.want {
			t.Errorf("%s: StoppedLike = %v, want %v", tt.name, got, tt.want)
		}
	}
}

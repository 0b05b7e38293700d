package generation

import (
	"slices"
	"syscall"
	"testing"
	"time"
)

func TestMaxDraining(t *testing.T) {
	for _, tt := range []struct{ in, want int }{{3, 3}, {0, DefaultMaxDraining}, {-1, 0}} {
		if got := MaxDraining(tt.in); got != tt.want {
			t.Errorf("MaxDraining(%d) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

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

func TestAwaitStop(t *testing.T) {
	stop := make(chan struct{})
	close(stop)
	if !AwaitStop(stop) {
		t.Error("a closed stop: false")
	}
	start := time.Now()
	if AwaitStop(make(chan struct{})) || time.Since(start) < StopRaceGrace {
		t.Error("no stop: true, or returned before StopRaceGrace")
	}
}

func TestAppendBounded(t *testing.T) {
	var h []int
	for i := range 10 {
		h = AppendBounded(h, i, 4)
	}
	if !slices.Equal(h, []int{6, 7, 8, 9}) {
		t.Errorf("history %v, want the last 4", h)
	}
}

package generation

import (
	"slices"
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

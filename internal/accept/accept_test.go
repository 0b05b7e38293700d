package accept

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	var slept []time.Duration
	b := Backoff{sleep: func(d time.Duration) { slept = append(slept, d) }}
	emfile := &net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	var firsts []bool
	for range 10 {
		retry, first := b.Wait(emfile)
		if !retry {
			t.Fatal("EMFILE not retried")
		}
		firsts = append(firsts, first)
	}
	want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000}
	for i := range want {
		want[i] *= time.Millisecond
	}
	if fmt.Sprint(slept) != fmt.Sprint(want) {
		t.Errorf("slept %v, want %v", slept, want)
	}
	if !firsts[0] || firsts[1] {
		t.Errorf("first of the burst: %v, want only the first", firsts)
	}
	b.Reset()
	if _, first := b.Wait(fmt.Errorf("x: %w", syscall.ENFILE)); !first {
		t.Error("after Reset, a new burst")
	}
	for _, err := range []error{net.ErrClosed, errors.New("other"), syscall.EBADF} {
		if retry, _ := b.Wait(err); retry {
			t.Errorf("%v retried", err)
		}
	}
}

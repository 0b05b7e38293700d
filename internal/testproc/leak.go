package testproc

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// settle is how long the gates wait for closes and exits that happen just
// after a test returns (a goroutine on its way out, a finalizer).
const settle = 5 * time.Second

// CheckFDs fails the test when the set of open file descriptors at its end
// differs from the set at the call, naming each leaked fd and what it is.
func CheckFDs(t testing.TB) {
	t.Helper()
	before := openFDs(t)
	t.Cleanup(func() {
		var leaked []string
		deadline := time.Now().Add(settle)
		for {
			leaked = leaked[:0]
			for fd, target := range openFDs(t) {
				if _, ok := before[fd]; !ok {
					leaked = append(leaked, fmt.Sprintf("fd %d -> %s", fd, target))
				}
			}
			if len(leaked) == 0 || time.Now().After(deadline) {
				break
			}
			runtime.GC() // an unreachable *os.File closes through its finalizer
			time.Sleep(20 * time.Millisecond)
		}
		if len(leaked) > 0 {
			slices.Sort(leaked)
			t.Errorf("leaked %d fds:\n\t%s", len(leaked), strings.Join(leaked, "\n\t"))
		}
	})
}

func openFDs(t testing.TB) map[int]string {
	t.Helper()
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		t.Fatalf("testproc: %v", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		t.Fatalf("testproc: %v", err)
	}
	self := int(d.Fd())
	fds := make(map[int]string, len(names))
	for _, n := range names {
		var fd int
		if _, err := fmt.Sscan(n, &fd); err != nil || fd == self {
			continue
		}
		target, _ := os.Readlink("/proc/self/fd/" + n)
		fds[fd] = target
	}
	return fds
}

// CheckGoroutines fails the test when goroutines started during it are still
// running at its end, printing their stacks.
func CheckGoroutines(t testing.TB) {
	t.Helper()
	before := map[string]bool{}
	for _, g := range goroutines() {
		before[goroutineID(g)] = true
	}
	t.Cleanup(func() {
		var extra []string
		deadline := time.Now().Add(settle)
		for {
			extra = extra[:0]
			for _, g := range goroutines() {
				if !before[goroutineID(g)] && !benign(g) {
					extra = append(extra, g)
				}
			}
			if len(extra) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if len(extra) > 0 {
			t.Errorf("leaked %d goroutines:\n\n%s", len(extra), strings.Join(extra, "\n\n"))
		}
	})
}

func goroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Split(strings.TrimSpace(string(buf[:n])), "\n\n")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// goroutineID returns "goroutine N" from a stack's first line.
func goroutineID(stack string) string {
	first, _, _ := strings.Cut(stack, "\n")
	id, _, _ := strings.Cut(first, " [")
	return id
}

// benign reports goroutines that belong to the runtime or the test harness.
func benign(stack string) bool {
	for _, s := range []string{
		"testing.(*T).Run", "testing.tRunner", "testing.runTests",
		"testing.(*M).", "runtime.goexit0", "os/signal.signal_recv",
		"signal.loop", "runtime.ensureSigM", "created by runtime.gc",
		"runtime.MHeap_Scavenger", "testproc.goroutines",
	} {
		if strings.Contains(stack, s) {
			return true
		}
	}
	return false
}

package testproc

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Children lists the children of ppid that are alive (not zombies), from
// /proc.
func Children(ppid int) []int {
	alive, _ := ChildProcs(ppid)
	return alive
}

// ChildProcs lists the children of ppid from /proc: those alive, and the
// zombies (exited, not reaped yet).
func ChildProcs(ppid int) (alive, zombies []int) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
		switch {
		case len(f) < 2 || f[1] != strconv.Itoa(ppid):
		case f[0] == "Z":
			zombies = append(zombies, pid)
		default:
			alive = append(alive, pid)
		}
	}
	return alive, zombies
}

// PeakChildren counts ppid's living children every millisecond until the
// returned function is called (or the test ends), which returns the most
// seen at once: a sample, it can miss a peak shorter than a poll.
func PeakChildren(t testing.TB, ppid int) func() int {
	t.Helper()
	var peak atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			if n := int64(len(Children(ppid))); n > peak.Load() {
				peak.Store(n)
			}
		}
	})
	var once sync.Once
	finish := func() int {
		once.Do(func() { close(stop); wg.Wait() })
		return int(peak.Load())
	}
	t.Cleanup(func() { finish() })
	return finish
}

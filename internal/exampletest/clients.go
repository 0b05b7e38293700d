package exampletest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// maxNotes is how many failures a Failures keeps the text of.
const maxNotes = 10

// awaitLimit bounds AwaitPID.
const awaitLimit = 10 * time.Second

// Failures keeps the text of the first failures a test's clients met, for
// its report. The zero value is ready; it is safe for concurrent use.
type Failures struct {
	mu   sync.Mutex
	list []string
}

// Note keeps one failure, when fewer than ten are kept.
func (f *Failures) Note(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.list) < maxNotes {
		f.list = append(f.list, fmt.Sprintf(format, args...))
	}
}

// List returns the failures kept, in order.
func (f *Failures) List() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.list...)
}

// AwaitPID waits until each of last, the pid of a client's last answer,
// is pid, and fails the test (Fatal) saying how many of the clients
// (named what: "streams", "clients") lag after 10 s.
func AwaitPID(t testing.TB, what string, last []*atomic.Int64, pid int) {
	t.Helper()
	for deadline := time.Now().Add(awaitLimit); ; time.Sleep(time.Millisecond) {
		behind := 0
		for _, l := range last {
			if l.Load() != int64(pid) {
				behind++
			}
		}
		if behind == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d %s had no answer from pid %d", behind, len(last), what, pid)
		}
	}
}

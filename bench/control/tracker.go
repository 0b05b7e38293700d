package control

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Tracker follows which process answers. The zero value is not usable; use
// NewTracker.
type Tracker struct {
	current atomic.Int64

	mu      sync.Mutex
	first   map[int]time.Time // pid -> end of its first answer
	changed chan struct{}     // closed and replaced when current changes
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker {
	return &Tracker{first: map[int]time.Time{}, changed: make(chan struct{})}
}

// Observe records an answer from pid that ended at end. It is safe for
// concurrent use and cheap when pid is the current process.
func (t *Tracker) Observe(pid int, end time.Time) {
	if pid <= 0 || int64(pid) == t.current.Load() {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, seen := t.first[pid]; seen {
		return // an old generation still answering while it drains
	}
	t.first[pid] = end
	t.current.Store(int64(pid))
	close(t.changed)
	t.changed = make(chan struct{})
}

// Current is the newest process that answered, 0 before any answer.
func (t *Tracker) Current() int { return int(t.current.Load()) }

// Pids lists every process that answered.
func (t *Tracker) Pids() []int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]int, 0, len(t.first))
	for pid := range t.first {
		out = append(out, pid)
	}
	return out
}

// Forget makes the tracker treat pid as never seen. Pids are reused by the
// kernel; a benchmark that restarts processes forgets the ones it reaped.
func (t *Tracker) Forget(pid int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.first, pid)
}

// WaitNew waits until a process other than old, first seen at or after
// since, answers, and returns it with the end of its first answer.
func (t *Tracker) WaitNew(ctx context.Context, old int, since time.Time) (int, time.Time, error) {
	for {
		t.mu.Lock()
		cur := int(t.current.Load())
		at := t.first[cur]
		ch := t.changed
		t.mu.Unlock()
		if cur != 0 && cur != old && !at.Before(since) {
			return cur, at, nil
		}
		select {
		case <-ctx.Done():
			return 0, time.Time{}, ctx.Err()
		case <-ch:
		}
	}
}

package control

import (
	"context"
	"sync"
	"time"
)

// DefaultPoll is the Watcher's polling period when WatcherConfig.Poll is 0.
const DefaultPoll = time.Millisecond

// WatcherConfig configures a Watcher. The zero value polls every
// DefaultPoll and reaps no one.
type WatcherConfig struct {
	Poll time.Duration
	// Reap lets the watcher collect zombies among the watched pids (when
	// this process is a child subreaper they are its children). Pids whose
	// *exec.Cmd is waited on elsewhere must not be watched with Reap set.
	Reap bool
}

// Watcher records when watched processes exit.
type Watcher struct {
	cfg    WatcherConfig
	mu     sync.Mutex
	live   map[int]bool
	exited map[int]time.Time
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewWatcher starts a watcher; Close stops it.
func NewWatcher(cfg WatcherConfig) *Watcher {
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &Watcher{cfg: cfg, live: map[int]bool{}, exited: map[int]time.Time{}, cancel: cancel}
	w.wg.Go(func() { w.loop(ctx) })
	return w
}

// Watch starts watching pid (again, if it was watched before).
func (w *Watcher) Watch(pid int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.exited, pid)
	w.live[pid] = true
}

// Exited returns when pid was seen gone, and whether it was.
func (w *Watcher) Exited(pid int) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.exited[pid]
	return t, ok
}

// Live is the number of watched processes still running.
func (w *Watcher) Live() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.live)
}

// LivePids lists the watched processes still running.
func (w *Watcher) LivePids() []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]int, 0, len(w.live))
	for pid := range w.live {
		out = append(out, pid)
	}
	return out
}

// WaitAll waits until every watched process has exited or ctx is done.
func (w *Watcher) WaitAll(ctx context.Context) error {
	t := time.NewTicker(w.cfg.Poll)
	defer t.Stop()
	for w.Live() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// Close stops the watcher.
func (w *Watcher) Close() {
	w.cancel()
	w.wg.Wait()
}

func (w *Watcher) loop(ctx context.Context) {
	t := time.NewTicker(w.cfg.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.mu.Lock()
		pids := make([]int, 0, len(w.live))
		for pid := range w.live {
			pids = append(pids, pid)
		}
		w.mu.Unlock()
		for _, pid := range pids {
			exited, err := State(pid)
			if err != nil || !exited {
				continue
			}
			now := time.Now()
			if w.cfg.Reap {
				reap(pid)
			}
			w.mu.Lock()
			delete(w.live, pid)
			w.exited[pid] = now
			w.mu.Unlock()
		}
	}
}

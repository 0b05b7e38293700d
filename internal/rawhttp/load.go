package rawhttp

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Load runs clients that make one request after another ("GET /") with a
// Client each, never retrying, and counts what happened: the load driver
// of the tests that count failed requests across upgrades.
type Load struct {
	OK, Failed atomic.Int64

	last []atomic.Int64 // the X-Pid of each client's last answer

	mu     sync.Mutex
	errs   []string
	first  map[int]time.Time // when each X-Pid first answered
	latest answer            // the last answer, of any client
	quit   chan struct{}
	wg     sync.WaitGroup
}

// answer is one response: its X-Pid and when it came.
type answer struct {
	pid int
	at  time.Time
}

// maxErrs is how many failures Load keeps the text of.
const maxErrs = 10

// StartLoad starts n clients against addr; keepAlive(i) says whether
// client i keeps its connection (nil: none does, a connection per request).
func StartLoad(addr string, n int, keepAlive func(i int) bool) *Load {
	l := &Load{last: make([]atomic.Int64, n), first: map[int]time.Time{}, quit: make(chan struct{})}
	for i := range n {
		c := &Client{Addr: addr, KeepAlive: keepAlive != nil && keepAlive(i)}
		l.wg.Go(func() {
			defer c.Close()
			for {
				select {
				case <-l.quit:
					return
				default:
				}
				h, err := c.Get("/")
				if err != nil {
					l.Failed.Add(1)
					l.mu.Lock()
					if len(l.errs) < maxErrs {
						l.errs = append(l.errs, err.Error())
					}
					l.mu.Unlock()
					continue
				}
				now := time.Now()
				pid, _ := strconv.Atoi(h.Get("X-Pid"))
				l.last[i].Store(int64(pid))
				l.mu.Lock()
				if _, seen := l.first[pid]; !seen {
					l.first[pid] = now
				}
				l.latest = answer{pid, now}
				l.mu.Unlock()
				l.OK.Add(1)
			}
		})
	}
	return l
}

// Errors returns the first failures' texts.
func (l *Load) Errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.errs...)
}

// Await waits until n more requests have been made (answered or failed).
func (l *Load) Await(n int64) {
	want := l.OK.Load() + l.Failed.Load() + n
	for l.OK.Load()+l.Failed.Load() < want {
		time.Sleep(time.Millisecond)
	}
}

// AwaitAll waits until every client's last answer came from pid (its
// X-Pid), and reports false, naming the client that lags, after limit.
func (l *Load) AwaitAll(pid int, limit time.Duration) (ok bool, lagging, lastPID int) {
	deadline := time.Now().Add(limit)
	for i := range l.last {
		for l.last[i].Load() != int64(pid) {
			if time.Now().After(deadline) {
				return false, i, int(l.last[i].Load())
			}
			time.Sleep(time.Millisecond)
		}
	}
	return true, 0, 0
}

// FirstFrom waits for the first answer from pid (its X-Pid) and returns
// when it came; false after limit.
func (l *Load) FirstFrom(pid int, limit time.Duration) (time.Time, bool) {
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(100 * time.Microsecond) {
		l.mu.Lock()
		at, ok := l.first[pid]
		l.mu.Unlock()
		if ok {
			return at, true
		}
	}
	return time.Time{}, false
}

// PIDAfter waits for an answer that came after t and returns its X-Pid:
// the process serving now; false after limit.
func (l *Load) PIDAfter(t time.Time, limit time.Duration) (int, bool) {
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		l.mu.Lock()
		a := l.latest
		l.mu.Unlock()
		if a.at.After(t) {
			return a.pid, true
		}
	}
	return 0, false
}

// Stop stops the clients and waits for them; it may be called again.
func (l *Load) Stop() {
	select {
	case <-l.quit:
	default:
		close(l.quit)
	}
	l.wg.Wait()
}

// TB is the part of testing.TB that Finish uses.
type TB interface {
	Helper()
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
}

// Finish stops l, logs its counts after what (such as "3 reloads"), and
// fails t when any request failed: the one check of a test that asserts
// that none did.
func (l *Load) Finish(t TB, what string) {
	t.Helper()
	l.Stop()
	ok, failed := l.OK.Load(), l.Failed.Load()
	t.Logf("%s: %d requests answered, %d failed", what, ok, failed)
	if failed != 0 {
		t.Errorf("%s: %d of %d requests failed, first: %v", what, failed, ok+failed, l.Errors())
	}
}

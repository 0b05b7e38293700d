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
	mu   sync.Mutex
	errs []string
	quit chan struct{}
	wg   sync.WaitGroup
}

// maxErrs is how many failures Load keeps the text of.
const maxErrs = 10

// StartLoad starts n clients against addr; keepAlive(i) says whether
// client i keeps its connection (nil: none does, a connection per request).
func StartLoad(addr string, n int, keepAlive func(i int) bool) *Load {
	l := &Load{last: make([]atomic.Int64, n), quit: make(chan struct{})}
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
				pid, _ := strconv.Atoi(h.Get("X-Pid"))
				l.last[i].Store(int64(pid))
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

// Stop stops the clients and waits for them; it may be called again.
func (l *Load) Stop() {
	select {
	case <-l.quit:
	default:
		close(l.quit)
	}
	l.wg.Wait()
}

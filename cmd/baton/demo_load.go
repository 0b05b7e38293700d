package main

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batonhq/baton/internal/rawhttp"
)

// demoLoad runs the demo's clients: each makes one request after another
// ("GET /") with a rawhttp.Client, never retrying, and every answer or
// failure is recorded with its time, for the counts and the timelines.
type demoLoad struct {
	ok, failed atomic.Int64

	mu    sync.Mutex
	hits  []demoHit
	first map[int]time.Time // when each X-Pid first answered
	errs  []string
	quit  chan struct{}
	wg    sync.WaitGroup
}

// demoHit is one request's outcome: the X-Pid that answered, 0 for a
// failure.
type demoHit struct {
	at  time.Time
	pid int
}

// startDemoLoad starts n clients against addr; the even ones keep their
// connection, the odd ones open one per request.
func startDemoLoad(addr string, n int) *demoLoad {
	l := &demoLoad{first: map[int]time.Time{}, quit: make(chan struct{})}
	for i := range n {
		c := &rawhttp.Client{Addr: addr, KeepAlive: i%2 == 0}
		l.wg.Go(func() {
			defer c.Close()
			for {
				select {
				case <-l.quit:
					return
				default:
				}
				h, err := c.Get("/")
				now := time.Now()
				pid := 0
				if err == nil {
					pid, _ = strconv.Atoi(h.Get("X-Pid"))
				}
				l.mu.Lock()
				l.hits = append(l.hits, demoHit{now, pid})
				if err != nil && len(l.errs) < demoErrors {
					l.errs = append(l.errs, err.Error())
				}
				if _, seen := l.first[pid]; err == nil && !seen {
					l.first[pid] = now
				}
				l.mu.Unlock()
				if err != nil {
					l.failed.Add(1)
					// A client whose connection was refused does not spin:
					// a failure counts once per millisecond at most.
					time.Sleep(time.Millisecond)
				} else {
					l.ok.Add(1)
				}
			}
		})
	}
	return l
}

// Await waits until n more requests have been made (answered or failed).
func (l *demoLoad) Await(n int64) {
	want := l.ok.Load() + l.failed.Load() + n
	for l.ok.Load()+l.failed.Load() < want {
		time.Sleep(time.Millisecond)
	}
}

// FirstFrom waits for the first answer from pid and returns when it
// came; false after limit.
func (l *demoLoad) FirstFrom(pid int, limit time.Duration) (time.Time, bool) {
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
func (l *demoLoad) PIDAfter(t time.Time, limit time.Duration) (int, bool) {
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		l.mu.Lock()
		for i := len(l.hits) - 1; i >= 0 && l.hits[i].at.After(t); i-- {
			if l.hits[i].pid != 0 {
				pid := l.hits[i].pid
				l.mu.Unlock()
				return pid, true
			}
		}
		l.mu.Unlock()
	}
	return 0, false
}

// Stop stops the clients and waits for them; it may be called again.
func (l *demoLoad) Stop() {
	select {
	case <-l.quit:
	default:
		close(l.quit)
	}
	l.wg.Wait()
}

// Errors returns the first failures' texts.
func (l *demoLoad) Errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.errs...)
}

// demoEvent is an upgrade or a restart, for its timeline.
type demoEvent struct {
	what     string
	at       time.Time // the request (reload, SIGTERM)
	old, new int       // the pids before and after
	first    time.Time // the new pid's first answer (zero: none)
}

// timelineStep is a timeline's resolution.
const timelineStep = 10 * time.Millisecond

// timeline counts the answers around ev in steps of timelineStep: from
// two steps before the request to a few after the new process's first
// answer, by process, and the failures. Call it after Stop.
func (l *demoLoad) timeline(ev demoEvent) demoTimeline {
	from := ev.at.Add(-2 * timelineStep)
	end := ev.at.Add(8 * timelineStep)
	if last := ev.first.Add(4 * timelineStep); !ev.first.IsZero() && last.After(end) {
		end = last
	}
	n := min(int((end.Sub(from)+timelineStep-1)/timelineStep), 25)
	tl := demoTimeline{What: ev.what, StartMS: -2 * int(timelineStep/time.Millisecond), StepMS: int(timelineStep / time.Millisecond)}
	rows := map[int]*demoRow{}
	row := func(pid int) *demoRow {
		if r, ok := rows[pid]; ok {
			return r
		}
		label := "failed"
		switch pid {
		case ev.old:
			label = "old pid " + strconv.Itoa(pid)
		case ev.new:
			label = "new pid " + strconv.Itoa(pid)
		}
		rows[pid] = &demoRow{Label: label, Counts: make([]int, n)}
		return rows[pid]
	}
	// The old and new rows always show, in that order; failures when
	// any. Answers from other processes (the previous or next upgrade's)
	// are left out.
	order := []int{ev.old, ev.new}
	row(ev.old)
	row(ev.new)
	l.mu.Lock()
	for _, h := range l.hits {
		if h.at.Before(from) {
			continue
		}
		i := int(h.at.Sub(from) / timelineStep)
		if i >= n {
			continue
		}
		if h.pid != 0 && h.pid != ev.old && h.pid != ev.new {
			continue
		}
		if _, ok := rows[h.pid]; !ok {
			order = append(order, h.pid)
		}
		row(h.pid).Counts[i]++
	}
	l.mu.Unlock()
	for _, pid := range order {
		tl.Rows = append(tl.Rows, *rows[pid])
	}
	return tl
}

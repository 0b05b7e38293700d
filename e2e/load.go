//go:build linux

package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/batonhq/baton/internal/rawhttp"
)

// Defaults for LoadConfig's zero values.
const (
	DefaultLoadClients     = 2
	DefaultLoadMaxRequests = 2_000_000
	DefaultLoadMaxDuration = 3 * time.Minute
	DefaultLoadTimeout     = 10 * time.Second
)

// Failure kinds counted by the load driver.
const (
	FailRefused   = "refused"    // ECONNREFUSED at dial
	FailReset     = "reset"      // ECONNRESET or EPIPE
	FailEOF       = "eof"        // connection closed before a full response
	FailTimeout   = "timeout"    // no response within LoadConfig.Timeout
	FailBadStatus = "bad-status" // a response other than 200
	FailOther     = "other"      // anything else (the sample says what)
)

// maxSamples is how many failure messages a LoadResult keeps.
const maxSamples = 10

// maxErrors is how many failed requests a LoadResult lists in Errors.
const maxErrors = 1000

// LoadConfig describes HTTP/1.1 load from inside a box. The zero value, given
// a URL, runs two keep-alive and two new-connection clients.
type LoadConfig struct {
	// URL is the target, an http:// URL with an IP address and port.
	URL string
	// KeepAlive is the number of clients that reuse their connection until
	// the server closes it (Connection: close), then open a new one.
	KeepAlive int
	// NewConn is the number of clients that open a connection per request.
	// When both are zero, each is DefaultLoadClients.
	NewConn int
	// MaxRequests bounds the number of requests; zero means
	// DefaultLoadMaxRequests.
	MaxRequests int64
	// MaxDuration bounds the run; zero means DefaultLoadMaxDuration.
	MaxDuration time.Duration
	// Timeout bounds each request, dial included; zero means
	// DefaultLoadTimeout.
	Timeout time.Duration
	// Pause is each client's pause between two requests.
	Pause time.Duration
}

// LoadResult counts the requests made by a load run. Every request that did
// not end in a complete 200 response is a failure, whatever the cause: no
// retries.
type LoadResult struct {
	Requests int64
	Failed   int64
	// Lost counts the failed requests, not in Failed, whose connection a
	// process killed on purpose had accepted (MarkLost).
	Lost     int64
	Failures map[string]int64 // by kind (Fail* constants)
	Samples  []string         // the first failures' messages
	Errors   []RequestError   // the first maxErrors failed requests, in order
	Pids     map[int]int64    // responses by X-Pid header (0: none)
	Duration time.Duration
}

// RequestError is one failed request.
type RequestError struct {
	Kind string // a Fail* constant
	// Dialed is when the client started to open the connection the
	// request was sent on (a keep-alive connection may be older than the
	// request).
	Dialed time.Time
	Failed time.Time // when the request failed
	Err    error
}

// String formats the counts on one line.
func (r LoadResult) String() string {
	kinds := make([]string, 0, len(r.Failures))
	for k, n := range r.Failures {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
	}
	slices.Sort(kinds)
	s := fmt.Sprintf("requests=%d failed=%d pids=%d", r.Requests, r.Failed, len(r.Pids))
	if len(kinds) > 0 {
		s += " (" + strings.Join(kinds, " ") + ")"
	}
	return s
}

// Load is a running load driver; Stop ends it.
type Load struct {
	box      *Box
	cfg      LoadConfig
	addr     string // host:port
	path     string // the request's target
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
	start    time.Time
	issued   atomic.Int64
	done     atomic.Int64
	failed   atomic.Int64
	lost     atomic.Int64
	killSeq  atomic.Int64

	mu       sync.Mutex
	failures map[string]int64
	samples  []string
	errors   []RequestError
	pids     map[int]int64
	// lostPorts: client port -> the MarkLost call (its sequence number)
	// that named it.
	lostPorts map[int]int64
}

// StartLoad starts HTTP/1.1 clients in the box's network namespace. They
// run until Stop, ctx's end, MaxRequests or MaxDuration, whichever comes
// first; a request in flight then still completes.
func (b *Box) StartLoad(ctx context.Context, cfg LoadConfig) *Load {
	b.t.Helper()
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Scheme != "http" || u.Port() == "" {
		b.t.Fatalf("e2e: load: bad URL %q", cfg.URL)
	}
	if cfg.KeepAlive == 0 && cfg.NewConn == 0 {
		cfg.KeepAlive, cfg.NewConn = DefaultLoadClients, DefaultLoadClients
	}
	if cfg.MaxRequests <= 0 {
		cfg.MaxRequests = DefaultLoadMaxRequests
	}
	if cfg.MaxDuration <= 0 {
		cfg.MaxDuration = DefaultLoadMaxDuration
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultLoadTimeout
	}
	l := &Load{
		box:       b,
		cfg:       cfg,
		addr:      u.Host,
		path:      u.RequestURI(),
		stop:      make(chan struct{}),
		start:     time.Now(),
		failures:  map[string]int64{},
		pids:      map[int]int64{},
		lostPorts: map[int]int64{},
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.MaxDuration)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer cancel()
		select {
		case <-ctx.Done():
			l.halt()
		case <-l.stop:
		}
	}()
	for i := range cfg.KeepAlive + cfg.NewConn {
		l.wg.Add(1)
		go l.client(i < cfg.KeepAlive)
	}
	return l
}

// Requests returns the number of requests completed so far, failed or not.
func (l *Load) Requests() int64 { return l.done.Load() }

// Failed returns the number of failed requests so far.
func (l *Load) Failed() int64 { return l.failed.Load() }

// WaitRequests waits until n more requests than now have completed, or the
// load stopped; it lets a test make sure load ran across an event.
func (l *Load) WaitRequests(n int64) {
	target := l.done.Load() + n
	for l.done.Load() < target {
		select {
		case <-l.stop:
			return
		case <-time.After(time.Millisecond):
		}
	}
}

// MarkLost declares the connections from these client ports lost by
// construction: the process that accepted them is about to be killed on
// purpose. A request that then fails on one of them counts as Lost, not
// Failed. Call it while the process is stopped (SIGSTOP), before SIGKILL:
// at any moment a client port names one open connection to the target.
func (l *Load) MarkLost(ports []int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	seq := l.killSeq.Add(1)
	for _, p := range ports {
		l.lostPorts[p] = seq
	}
}

func (l *Load) halt() { l.stopOnce.Do(func() { close(l.stop) }) }

// Stop ends the load, waits for the requests in flight and returns the
// counts.
func (l *Load) Stop() LoadResult {
	l.halt()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return LoadResult{
		Requests: l.done.Load(),
		Failed:   l.failed.Load(),
		Lost:     l.lost.Load(),
		Failures: maps(l.failures),
		Samples:  slices.Clone(l.samples),
		Errors:   slices.Clone(l.errors),
		Pids:     maps(l.pids),
		Duration: time.Since(l.start),
	}
}

func maps[K comparable, V any](m map[K]V) map[K]V {
	c := make(map[K]V, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// client sends requests one after the other until the load stops, on a
// rawhttp.Client (which never retries) whose connections the box dials.
func (l *Load) client(keepAlive bool) {
	defer l.wg.Done()
	var cur *clientConn // the connection c has, or last had, open
	c := &rawhttp.Client{
		Addr: l.addr, KeepAlive: keepAlive, Timeout: l.cfg.Timeout, UserAgent: "baton-e2e",
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			cur = &clientConn{dialed: time.Now(), dialSeq: l.killSeq.Load()}
			conn, err := l.box.Dial(ctx, network, addr)
			if err != nil {
				cur = nil
				return nil, fmt.Errorf("dial: %w", err)
			}
			if a, ok := conn.LocalAddr().(*net.TCPAddr); ok {
				cur.port = a.Port
			}
			return conn, nil
		},
	}
	defer c.Close()
	for {
		select {
		case <-l.stop:
			return
		default:
		}
		if l.issued.Add(1) > l.cfg.MaxRequests {
			l.halt()
			return
		}
		now := time.Now()
		h, err := c.Get(l.path)
		dialed := now
		if cur != nil {
			dialed = cur.dialed
		}
		var se *rawhttp.StatusError
		if err != nil && cur != nil && !errors.As(err, &se) && l.isLost(cur) {
			// An answer, whatever its status, is never lost.
			l.done.Add(1)
			l.lost.Add(1)
		} else {
			pid, _ := strconv.Atoi(h.Get("X-Pid"))
			l.record(pid, dialed, err)
		}
		if l.cfg.Pause > 0 {
			select {
			case <-l.stop:
				return
			case <-time.After(l.cfg.Pause):
			}
		}
	}
}

// clientConn is what the load knows of a client's connection.
type clientConn struct {
	dialed  time.Time // when the dial started
	port    int       // the local port
	dialSeq int64     // the number of MarkLost calls before the dial
}

// isLost reports whether c was named by a MarkLost after it was dialed.
func (l *Load) isLost(c *clientConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	seq, ok := l.lostPorts[c.port]
	return ok && seq > c.dialSeq
}

func (l *Load) record(pid int, dialed time.Time, err error) {
	l.done.Add(1)
	if err == nil {
		l.mu.Lock()
		l.pids[pid]++
		l.mu.Unlock()
		return
	}
	l.failed.Add(1)
	kind := classify(err)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures[kind]++
	if len(l.samples) < maxSamples {
		l.samples = append(l.samples, fmt.Sprintf("%s after %v: %v",
			kind, time.Since(l.start).Round(time.Millisecond), err))
	}
	if len(l.errors) < maxErrors {
		l.errors = append(l.errors, RequestError{Kind: kind, Dialed: dialed, Failed: time.Now(), Err: err})
	}
}

// classify names a failed request's kind.
func classify(err error) string {
	var se *rawhttp.StatusError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		return FailBadStatus
	case errors.Is(err, syscall.ECONNREFUSED):
		return FailRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return FailReset
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return FailEOF
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return FailTimeout
	}
	return FailOther
}

//go:build linux

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/exampletest"
	"github.com/batonhq/baton/internal/testproc"
)

// wait bounds every wait and every client operation in the tests; reaching
// it is a failure, never a pass.
const wait = 30 * time.Second

// upgrades is how many times the tests across upgrades upgrade the example.
const upgrades = 200

// example is a chain of generations of the example, started
// socket-activated (socket name "http") as systemd would start it.
type example struct {
	*exampletest.Server

	mu    sync.Mutex
	spent time.Duration // in upgrade
}

// newExample starts generation 1 with the example's flags given, serving
// TLS with cert when it is not nil, and waits for its pid file. The test's
// cleanup stops the current generation, waits until every generation is
// gone and reaps them.
func newExample(t *testing.T, cert *testCert, flags ...string) *example {
	t.Helper()
	if cert != nil {
		flags = append(flags, "-tls-cert", cert.certFile, "-tls-key", cert.keyFile)
	}
	return &example{Server: exampletest.Start(t, exampletest.Config{Helper: "http", Socket: "http", Args: flags})}
}

// upgrade sends SIGHUP to the current generation n times, each time as soon
// as the pid file names its successor: the generations that handed over
// drain meanwhile, in parallel.
func (e *example) upgrade(n int) {
	start := time.Now()
	defer func() {
		e.mu.Lock()
		e.spent += time.Since(start)
		e.mu.Unlock()
	}()
	for range n {
		e.Upgrade()
	}
}

// upgradeUnder upgrades n times while the loads run, then stops them,
// waits for their clients and checks each.
func (e *example) upgradeUnder(t *testing.T, n int, loads ...*load) {
	t.Helper()
	e.upgrade(n)
	for _, l := range loads {
		l.stop()
	}
	for _, l := range loads {
		l.wait()
		l.check(t, e)
	}
}

// upgraded returns how many upgrades completed, and the time they took.
func (e *example) upgraded() (int, time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.PIDs()) - 1, e.spent
}

// testCert is a self-signed ECDSA P-256 certificate for 127.0.0.1, made
// for one test and written to its temporary directory.
type testCert struct {
	certFile, keyFile string
	pool              *x509.CertPool
}

func newTestCert(t *testing.T) *testCert {
	t.Helper()
	c := &testCert{}
	c.certFile, c.keyFile, c.pool = testproc.CertFiles(t)
	return c
}

// client returns a client configuration that trusts c and offers proto
// by ALPN.
func (c *testCert) client(proto string) *tls.Config {
	return &tls.Config{RootCAs: c.pool, ServerName: "127.0.0.1", NextProtos: []string{proto}}
}

// load runs clients that never retry, and counts: every step a client
// takes (one request, one stream) ends as a success or as a failure,
// classified by the load's classify function.
type load struct {
	name     string
	classify func(error) string // the class of a failure ("failed" when nil)
	tolerate func(string) bool  // classes counted and logged, but no test failure

	ok      atomic.Int64
	stopped chan struct{}
	ctx     context.Context // cancelled only to abandon the clients
	abandon context.CancelFunc
	wg      sync.WaitGroup

	mu     sync.Mutex
	failed map[string]int64    // class -> failures
	notes  map[string]int64    // what else the clients counted
	errs   map[string][]string // class -> its first failures
}

func newLoad(t *testing.T, name string) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{
		name: name, stopped: make(chan struct{}), ctx: ctx, abandon: cancel,
		failed: map[string]int64{}, notes: map[string]int64{}, errs: map[string][]string{},
	}
	// On a failed test: clients still blocked are abandoned, not counted.
	t.Cleanup(func() { l.stop(); l.abandon(); l.wg.Wait() })
	return l
}

// run starts n clients. Each gets its step from newClient and takes steps
// until stop; close, when not nil, runs when the client ends. A step gets
// a context that ends only when the test abandons its clients (a failure
// then is not counted).
func (l *load) run(n int, newClient func(i int) (step func(context.Context) error, close func())) {
	for i := range n {
		step, closeFn := newClient(i)
		l.wg.Go(func() {
			if closeFn != nil {
				defer closeFn()
			}
			for {
				select {
				case <-l.stopped:
					return
				default:
				}
				err := step(l.ctx)
				if l.ctx.Err() != nil {
					return
				}
				l.count(err)
			}
		})
	}
}

// notSent is what a step returns when it sent nothing after all: noted,
// neither a success nor a failure.
type notSent struct{ why string }

func (n notSent) Error() string { return "not sent: " + n.why }

func (l *load) count(err error) {
	if err == nil {
		l.ok.Add(1)
		return
	}
	if n, ok := errors.AsType[notSent](err); ok {
		l.note(n.Error())
		return
	}
	class := "failed"
	if l.classify != nil {
		class = l.classify(err)
	}
	l.mu.Lock()
	l.failed[class]++
	if len(l.errs[class]) < 5 {
		l.errs[class] = append(l.errs[class], err.Error())
	}
	l.mu.Unlock()
}

// note counts something else than a success or a failure.
func (l *load) note(what string) { l.add(what, 1) }

// add adds n to what note counts.
func (l *load) add(what string, n int) {
	l.mu.Lock()
	l.notes[what] += int64(n)
	l.mu.Unlock()
}

// stop lets every client finish its step and take no more.
func (l *load) stop() {
	select {
	case <-l.stopped:
	default:
		close(l.stopped)
	}
}

// wait waits until every client ended.
func (l *load) wait() { l.wg.Wait() }

// waitFor waits until every client ended, or for d, and reports whether
// they did.
func (l *load) waitFor(d time.Duration) bool {
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// check logs the counts and fails the test for any failure, or when no step
// succeeded.
func (l *load) check(t *testing.T, e *example) {
	t.Helper()
	upgrades, spent := e.upgraded()
	l.mu.Lock()
	defer l.mu.Unlock()
	var total, tolerated int64
	var parts []string
	for _, class := range slices.Sorted(maps.Keys(l.failed)) {
		total += l.failed[class]
		if l.tolerate != nil && l.tolerate(class) {
			tolerated += l.failed[class]
		}
		parts = append(parts, fmt.Sprintf("%s %d", class, l.failed[class]))
	}
	for _, what := range slices.Sorted(maps.Keys(l.notes)) {
		parts = append(parts, fmt.Sprintf("%s %d", what, l.notes[what]))
	}
	t.Logf("%s: %d ok, %d failed (%d tolerated) across %d upgrades (in %s); %s", l.name, l.ok.Load(), total, tolerated, upgrades, spent.Round(time.Millisecond), strings.Join(parts, ", "))
	for _, class := range slices.Sorted(maps.Keys(l.errs)) {
		if l.tolerate != nil && l.tolerate(class) {
			t.Logf("%s: %d failures %s, tolerated; the first:\n\t%s", l.name, l.failed[class], class, strings.Join(l.errs[class], "\n\t"))
			continue
		}
		t.Errorf("%s: %d failures %s; the first:\n\t%s", l.name, l.failed[class], class, strings.Join(l.errs[class], "\n\t"))
	}
	if l.ok.Load() == 0 {
		t.Errorf("%s: no step succeeded", l.name)
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

package handoff

import (
	"errors"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/control"
	"github.com/batonhq/baton/internal/testproc"
)

// TestStopDelaySecondSignal: with a stop delay of a minute, SIGTERM gets
// STOPPING=1 out at once while the generation goes on serving fresh and
// keep-alive clients with /healthz at 503; an upgrade asked for meanwhile
// is refused as stopping; a second SIGTERM ends the delay, and the
// generation drains and exits 0.
func TestStopDelaySecondSignal(t *testing.T) {
	testproc.CheckFDs(t)
	s := startService(t, serviceOpts{env: []string{envStopDelay + "=1m"}})
	l := startLoad(s.addr, 2, 2)
	defer l.stop()
	l.await(t, 50)
	if err := syscall.Kill(s.gen1, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	s.notes.waitFor(t, "STOPPING=1 from generation 1", has(s.gen1, "STOPPING=1"))
	atStop := l.requests.Load()

	c, err := dialHTTP("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.rawDo("/healthz")
	_ = c.Close()
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Close {
		t.Errorf("/healthz during the stop delay = %v, %v; want 503 on an open connection", resp, err)
	}
	if _, err := reload(t, s.gen1); !errors.Is(err, control.ErrStopping) {
		t.Errorf("reload during the stop delay = %v, want %v", err, control.ErrStopping)
	}
	l.await(t, atStop+200)
	l.stop()
	during := l.requests.Load() - atStop
	t.Logf("%d requests after STOPPING=1 (%d in all), %d failures", during, l.requests.Load(), l.failures.Load())
	if n := l.failures.Load(); n > 0 {
		t.Errorf("%d failed requests, first ones:\n%s", n, strings.Join(l.errs, "\n"))
	}
	if s.exited(s.gen1) {
		t.Fatal("generation 1 exited during its stop delay")
	}
	if err := syscall.Kill(s.gen1, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Well before the minute.
	if ws := s.waitExit(s.gen1); ws.ExitStatus() != 0 {
		t.Errorf("generation 1 exited with %v", ws)
	}
}

// await waits until the load has made n requests, or one failed.
func (l *load) await(t testing.TB, n int64) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for l.requests.Load() < n && l.failures.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests after %s, want %d", l.requests.Load(), wait, n)
		}
		time.Sleep(time.Millisecond)
	}
}

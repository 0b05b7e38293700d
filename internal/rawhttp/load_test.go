package rawhttp

import (
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testproc"
)

// TestLoad: the clients' answers are counted, and FirstFrom and PIDAfter
// see the X-Pid the server changes to.
func TestLoad(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var pid atomic.Int64
	pid.Store(1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Pid", strconv.FormatInt(pid.Load(), 10))
	})}
	done := make(chan struct{})
	go func() { _ = srv.Serve(ln); close(done) }()
	defer func() { _ = srv.Close(); <-done }()

	l := StartLoad(ln.Addr().String(), 4, func(i int) bool { return i%2 == 0 })
	defer l.Stop()
	l.Await(20)
	if got, ok := l.PIDAfter(time.Now(), 10*time.Second); !ok || got != 1 {
		t.Errorf("PIDAfter = %d, %v; want 1", got, ok)
	}
	changed := time.Now()
	pid.Store(2)
	first, ok := l.FirstFrom(2, 10*time.Second)
	if !ok || first.Before(changed) {
		t.Errorf("FirstFrom(2) = %v, %v; want a time after %v", first, ok, changed)
	}
	if ok, lagging, last := l.AwaitAll(2, 10*time.Second); !ok {
		t.Errorf("client %d still answered by %d", lagging, last)
	}
	if _, ok := l.FirstFrom(3, 10*time.Millisecond); ok {
		t.Error("FirstFrom(3): an answer from a pid that never answered")
	}
	l.Stop()
	if l.OK.Load() < 20 || l.Failed.Load() != 0 {
		t.Errorf("%d answered, %d failed (%v); want >= 20 and 0", l.OK.Load(), l.Failed.Load(), l.Errors())
	}
}

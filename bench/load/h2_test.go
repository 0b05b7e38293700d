package load

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/batonhq/baton/bench/tlscert"
)

// chanListener hands out the connections sent on ch; its Close ends
// only its own Accept, so that one server can shut down while the next
// serves the same port.
type chanListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
	addr net.Addr
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *chanListener) Addr() net.Addr { return l.addr }

func TestH2ReplacesConnAfterGoAway(t *testing.T) {
	pair, err := tlscert.Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(pair.CertFile, pair.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conns := make(chan net.Conn)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case conns <- c:
			case <-quit:
				c.Close()
				return
			}
		}
	})
	serve := func(pid int) *http.Server {
		tln := tls.NewListener(&chanListener{ch: conns, done: make(chan struct{}), addr: ln.Addr()}, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}})
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ProtoMajor != 2 {
				http.Error(w, "not h2", http.StatusBadRequest)
				return
			}
			w.Header().Set("X-Pid", fmt.Sprint(pid))
			_, _ = w.Write([]byte("ok\n"))
		})}
		wg.Go(func() { _ = srv.Serve(tln) })
		return srv
	}
	first := serve(1)
	var mu sync.Mutex
	seen := map[int]int{}
	stop := make(chan struct{})
	done := make(chan struct{})
	var res *Result
	go func() {
		defer close(done)
		res, err = Run(t.Context(), Config{
			Addr: ln.Addr().String(), Clients: 2, Duration: time.Minute, Proto: HTTP2, TLS: pair.Client, Think: time.Millisecond, Stop: stop,
			Observe: func(pid int, _ time.Time) {
				mu.Lock()
				defer mu.Unlock()
				seen[pid]++
			},
		})
	}()
	waitSeen := func(pid int) {
		for {
			mu.Lock()
			n := seen[pid]
			mu.Unlock()
			if n > 0 {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitSeen(1)
	second := serve(2)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := first.Shutdown(ctx); err != nil { // GOAWAY to the first server's connections
		t.Fatal(err)
	}
	waitSeen(2)
	close(stop)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	_ = second.Close()
	close(quit)
	ln.Close()
	wg.Wait()

	counts := Count(res.Records)
	// The one failure a GOAWAY may cause: a request sent while it was on
	// the wire, refused unprocessed. Anything else is this client's bug.
	if counts[OK] == 0 || counts.Failed() != counts[GoAwayRefused] {
		t.Fatalf("counts %v, errors %v", counts.Failures(), res.Errors)
	}
	// Every client reached the second server (waitSeen): over a
	// connection that replaced one after its GOAWAY, or one dialled after
	// a refused request.
	if res.Replaced+counts[GoAwayRefused] < 1 {
		t.Errorf("replaced %d connections and %d refused, want a new connection", res.Replaced, counts[GoAwayRefused])
	}
}

func TestClassifyH2(t *testing.T) {
	tests := []struct {
		err  error
		want Class
	}{
		{errors.New(h2GotGoAway), GoAwayRefused},
		{http2.GoAwayError{LastStreamID: 3}, GoAwayLost}, //nolint:staticcheck // what the ClientConn returns
		{fmt.Errorf("read body: %w", http2.StreamError{StreamID: 5, Code: http2.ErrCodeRefusedStream}), StreamReset},
		{fmt.Errorf("dial: %w", errNoH2), Other},
		{&StatusError{Status: 502}, Status},
		{nil, OK},
	}
	for _, tt := range tests {
		if got := classifyH2(tt.err, true, false); got != tt.want {
			t.Errorf("classifyH2(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestH2NeedsTLS(t *testing.T) {
	if _, err := Run(t.Context(), Config{Addr: "127.0.0.1:1", Proto: HTTP2}); err == nil {
		t.Error("HTTP/2 without TLS ran")
	}
}

package load

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/bench/tlscert"
)

// rawServer accepts connections on loopback and runs serve on each; it is
// closed and joined by the test's cleanup.
func rawServer(t *testing.T, serve func(n int, c *net.TCPConn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				serve(n, c.(*net.TCPConn))
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// readRequest consumes one request head.
func readRequest(br *bufio.Reader) bool {
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return false
		}
		if line == "\r\n" {
			return true
		}
	}
}

const okAnswer = "HTTP/1.1 200 OK\r\nX-Pid: 11\r\nX-Generation: 2\r\nContent-Length: 3\r\n\r\nok\n"

func TestClientClassifiesRealFailures(t *testing.T) {
	closedAddr := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}
	tests := []struct {
		name  string
		addr  func() string
		first Class // outcome of a first request
		then  Class // outcome of a second request from the same client
	}{
		{
			name:  "refused",
			addr:  closedAddr,
			first: Refused,
			then:  Refused,
		},
		{
			name: "reset",
			addr: func() string {
				return rawServer(t, func(_ int, c *net.TCPConn) {
					readRequest(bufio.NewReader(c))
					_ = c.SetLinger(0)
				})
			},
			first: Reset,
			then:  Reset,
		},
		{
			name: "empty reply",
			addr: func() string {
				return rawServer(t, func(_ int, c *net.TCPConn) { readRequest(bufio.NewReader(c)) })
			},
			first: EOFNew,
			then:  EOFNew,
		},
		{
			name: "idle close after one answer",
			addr: func() string {
				return rawServer(t, func(_ int, c *net.TCPConn) {
					br := bufio.NewReader(c)
					if readRequest(br) {
						_, _ = c.Write([]byte(okAnswer))
					}
					readRequest(br) // the second request arrives and is dropped
				})
			},
			first: OK,
			then:  EOFReused,
		},
		{
			name: "bad status",
			addr: func() string {
				return rawServer(t, func(_ int, c *net.TCPConn) {
					br := bufio.NewReader(c)
					for readRequest(br) {
						_, _ = c.Write([]byte("HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n"))
					}
				})
			},
			first: Status,
			then:  Status,
		},
		{
			name: "timeout",
			addr: func() string {
				return rawServer(t, func(_ int, c *net.TCPConn) {
					readRequest(bufio.NewReader(c))
					time.Sleep(300 * time.Millisecond)
				})
			},
			first: Timeout,
			then:  Timeout,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &Config{Addr: tt.addr(), Timeout: 100 * time.Millisecond}
			c := &client{cfg: cfg, start: time.Now(), fast: AppendRequest(nil, "/", false)}
			defer c.drop()
			var dialer net.Dialer
			for i, want := range []Class{tt.first, tt.then} {
				rec, err := c.do(t.Context(), &dialer, false)
				if rec.Class != want {
					t.Errorf("request %d: class %v (err %v), want %v", i, rec.Class, err, want)
				}
			}
		})
	}
}

func TestRunKeepAliveAndNewConn(t *testing.T) {
	var mu sync.Mutex
	conns := 0
	addr := rawServer(t, func(_ int, c *net.TCPConn) {
		mu.Lock()
		conns++
		mu.Unlock()
		br := bufio.NewReader(c)
		for readRequest(br) {
			if _, err := c.Write([]byte(okAnswer)); err != nil {
				return
			}
		}
	})
	for _, mode := range []Mode{KeepAlive, NewConn} {
		t.Run(mode.String(), func(t *testing.T) {
			observed := 0
			res, err := Run(context.Background(), Config{
				Addr:        addr,
				Clients:     2,
				SlowClients: 1,
				Duration:    30 * time.Millisecond,
				Mode:        mode,
				SlowShare:   0.5,
				SlowMS:      1,
				Observe: func(pid int, _ time.Time) {
					mu.Lock()
					defer mu.Unlock()
					if pid == 11 {
						observed++
					}
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			counts := Count(res.Records)
			if counts.Total() == 0 || counts.Failed() != 0 {
				t.Fatalf("counts %v, errors %v", counts, res.Errors)
			}
			mu.Lock()
			defer mu.Unlock()
			if observed != counts[OK] {
				t.Errorf("observed %d answers, want %d", observed, counts[OK])
			}
			slow := 0
			for _, r := range res.Records {
				if r.Slow {
					slow++
				}
				if r.Pid != 11 || r.Generation != 2 || r.End < r.Start {
					t.Fatalf("record %+v", r)
				}
				if mode == NewConn && r.Reused {
					t.Fatalf("reused connection in new-conn mode: %+v", r)
				}
			}
			if slow == 0 {
				t.Error("no slow request")
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i))
	}
	q := Summarize(ds)
	want := Quantiles{N: 100, P50: 50, P90: 90, P99: 99, Max: 100}
	if q != want {
		t.Errorf("Summarize = %+v, want %+v", q, want)
	}
	if (Summarize(nil) != Quantiles{}) {
		t.Error("empty sample has non-zero quantiles")
	}
	if got := Rank([]time.Duration{7}, 0.5); got != 7 {
		t.Errorf("Rank of one = %v", got)
	}
}

func TestFirstDelayOverTLS(t *testing.T) {
	pair, err := tlscert.Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(pair.CertFile, pair.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	addr := rawServer(t, func(_ int, c *net.TCPConn) {
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
		br := bufio.NewReader(tc)
		if readRequest(br) {
			_, _ = tc.Write([]byte(okAnswer))
		}
	})
	res, err := Run(t.Context(), Config{Addr: addr, Clients: 2, Duration: 100 * time.Millisecond, Mode: NewConn, TLS: pair.Client, FirstDelay: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	counts := Count(res.Records)
	if counts.Total() == 0 || counts.Failed() != 0 {
		t.Fatalf("counts %v, errors %v", counts.Failures(), res.Errors)
	}
	for _, r := range res.Records {
		if r.Reused || r.Status != 200 || r.Pid != 11 {
			t.Fatalf("record %+v", r)
		}
	}
}

// TestCheckIdle: a server that closes every connection after its first
// answer (without saying so) makes a keep-alive client that checks its
// idle connection replace it; one that does not fails (eof-reused).
func TestCheckIdle(t *testing.T) {
	addr := rawServer(t, func(_ int, c *net.TCPConn) {
		if readRequest(bufio.NewReader(c)) {
			_, _ = c.Write([]byte(okAnswer))
		}
	})
	for _, check := range []bool{true, false} {
		res, err := Run(context.Background(), Config{
			Addr: addr, Clients: 1, Duration: 100 * time.Millisecond, Mode: KeepAlive,
			Think: 20 * time.Millisecond, CheckIdle: check,
		})
		if err != nil {
			t.Fatal(err)
		}
		counts := Count(res.Records)
		if check && (counts.Failed() != 0 || res.Replaced == 0) {
			t.Errorf("CheckIdle: counts %v, %d replaced, errors %v; want no failure and replacements", counts, res.Replaced, res.Errors)
		}
		if !check && (counts[EOFReused] == 0 || res.Replaced != 0) {
			t.Errorf("without CheckIdle: counts %v, %d replaced; want eof-reused failures", counts, res.Replaced)
		}
	}
}

package load

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// Mode is how clients use connections.
type Mode int

// The client modes.
const (
	KeepAlive Mode = iota // reuse a connection until it is closed or fails
	NewConn               // one fresh connection per request
)

func (m Mode) String() string {
	if m == NewConn {
		return "new-conn"
	}
	return "keep-alive"
}

// Proto is what clients speak.
type Proto int

// The client protocols.
const (
	// HTTP1 clients send GET requests over HTTP/1.1 (Mode applies).
	HTTP1 Proto = iota
	// HTTP2 clients send GET requests over HTTP/2 (TLS with ALPN h2
	// required), each over an x/net/http2 ClientConn of its own: a
	// ClientConn that can take no new request (it got a GOAWAY, or
	// closed) is replaced by a new connection, which is not a failure.
	HTTP2
	// Events clients hold GET /events streams (server-sent events over
	// HTTP/1.1, chunked), each on a fresh connection: a stream that ends
	// with the chunked end of body is reopened at once, one that ends
	// otherwise after its 200 head is an AbruptEnd.
	Events
)

func (p Proto) String() string {
	switch p {
	case HTTP2:
		return "h2"
	case Events:
		return "events"
	}
	return "http/1.1"
}

// EventsPath is the path the Events clients open.
const EventsPath = "/events"

// Defaults for the zero Config.
const (
	DefaultClients  = 8
	DefaultDuration = 5 * time.Second
	DefaultTimeout  = 5 * time.Second
	DefaultSlowMS   = 50
)

// Config describes one load run. The zero value (with Addr set) runs
// DefaultClients keep-alive clients for DefaultDuration with fast requests
// only.
type Config struct {
	Addr      string        // host:port of the server
	Clients   int           // concurrent clients; DefaultClients when 0
	Duration  time.Duration // requests start only within this span; DefaultDuration when 0
	Mode      Mode
	SlowShare float64 // share of requests sent as /?ms=SlowMS, 0..1
	// SlowClients are added to Clients and send only /?ms=SlowMS requests,
	// so that slow requests are always in flight without starving the
	// fast ones.
	SlowClients int
	SlowMS      int           // sleep asked of slow requests; DefaultSlowMS when 0
	Think       time.Duration // pause of each client between two requests
	Timeout     time.Duration // deadline of one request, connect included; DefaultTimeout when 0
	Seed        uint64        // seed of the slow-request choice

	// Proto is what the clients speak; HTTP1 when zero.
	Proto Proto
	// TLS, when set, makes every connection TLS, the handshake done
	// right after the connect (with the deadline of the request that
	// opened it). HTTP2 requires it (NextProtos is set to h2 then).
	TLS *tls.Config
	// FirstDelay is a pause between the connect (and handshake) of a
	// fresh connection and its first request: a client that connects
	// early and speaks late. It counts in the request's latency and
	// deadline.
	FirstDelay time.Duration
	// CheckIdle makes an HTTP/1.1 client look, before it reuses its
	// connection, whether the server has closed it meanwhile (its FIN, or
	// TLS close_notify, already here: a read that does not wait returns
	// EOF), as an HTTP client that reads its idle connections in the
	// background knows (net/http's Transport does). Such a connection is
	// replaced by a new one, counted in Result.Replaced, not a failure; a
	// request sent before the close arrived still fails (eof-reused).
	CheckIdle bool
	// Ramp spreads the clients' starts evenly over this span (client i of
	// n starts i×Ramp/n in), so that thousands of clients do not all
	// connect, and handshake, in the same instant.
	Ramp time.Duration

	// Stop, when set, ends the run early: once it is closed no client
	// starts another request (the ones in flight complete).
	Stop <-chan struct{}

	// Observe, when set, is called from the clients' goroutines for every
	// answered request (OK or Status), with the answering pid and the time
	// the answer was complete. It must be cheap and safe for concurrent use.
	Observe func(pid int, end time.Time)
}

// Record is one request.
type Record struct {
	Start, End time.Duration // since Result.Start
	Pid        int32         // X-Pid of the answer, 0 without one
	Generation int32         // X-Generation of the answer
	Status     int16         // the answer's status, 0 without one
	Class      Class
	Slow       bool
	Reused     bool  // sent over a connection that had carried an answer before
	Events     int32 // events received on an event stream (Proto Events)
}

// Result is the outcome of a run: every request, in no particular order.
type Result struct {
	Start   time.Time
	Elapsed time.Duration // until the last request ended
	Records []Record
	// Errors keeps one example error per class, for the log.
	Errors map[Class]error
	// Replaced counts the HTTP/2 connections replaced because they could
	// take no new request (after a GOAWAY, or closed) between requests,
	// and with CheckIdle the HTTP/1.1 ones found closed by the server.
	Replaced int
	// Unsent counts HTTP/2 requests a ClientConn refused before sending
	// them (it had become unusable in between): not failures, the
	// connection was replaced and the client went on.
	Unsent int
}

// Run sends requests until cfg.Duration has passed or ctx is done, waits
// for the requests in flight (each bounded by cfg.Timeout) and returns every
// request's record.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Addr == "" {
		return nil, errors.New("load: no address")
	}
	if cfg.Clients <= 0 {
		cfg.Clients = DefaultClients
	}
	if cfg.Duration <= 0 {
		cfg.Duration = DefaultDuration
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.SlowMS <= 0 {
		cfg.SlowMS = DefaultSlowMS
	}
	if cfg.Proto == HTTP2 {
		if cfg.TLS == nil {
			return nil, errors.New("load: HTTP/2 needs TLS")
		}
		cfg.TLS = cfg.TLS.Clone()
		cfg.TLS.NextProtos = []string{"h2"}
	}
	res := &Result{Start: time.Now(), Errors: map[Class]error{}}
	stop := res.Start.Add(cfg.Duration)
	clients := make([]*client, cfg.Clients+max(cfg.SlowClients, 0))
	var wg sync.WaitGroup
	for i := range clients {
		c := &client{
			cfg:   &cfg,
			start: res.Start,
			rng:   rand.New(rand.NewPCG(cfg.Seed, uint64(i))),
			slow:  AppendRequest(nil, fmt.Sprintf("/?ms=%d", cfg.SlowMS), cfg.Mode == NewConn),
			fast:  AppendRequest(nil, "/", cfg.Mode == NewConn),
			errs:  map[Class]error{},
			share: cfg.SlowShare,
		}
		if i >= cfg.Clients {
			c.share = 1
		}
		clients[i] = c
		delay := time.Duration(0)
		if cfg.Ramp > 0 {
			delay = cfg.Ramp * time.Duration(i) / time.Duration(len(clients))
		}
		wg.Go(func() {
			if delay > 0 {
				t := time.NewTimer(delay)
				defer t.Stop()
				select {
				case <-t.C:
				case <-ctx.Done():
					return
				}
			}
			c.loop(ctx, stop)
		})
	}
	wg.Wait()
	n := 0
	for _, c := range clients {
		n += len(c.recs)
	}
	res.Records = make([]Record, 0, n)
	for _, c := range clients {
		res.Records = append(res.Records, c.recs...)
		for cl, err := range c.errs {
			res.Errors[cl] = err
		}
		res.Replaced += c.replaced
		res.Unsent += c.unsent
	}
	res.Elapsed = time.Since(res.Start)
	return res, nil
}

type client struct {
	cfg        *Config
	start      time.Time
	rng        *rand.Rand
	slow, fast []byte
	conn       net.Conn
	br         *bufio.Reader
	recs       []Record
	errs       map[Class]error
	share      float64 // of slow requests

	h2       *h2conn // HTTP2: the current connection
	replaced int     // HTTP2: connections replaced between requests
	unsent   int     // HTTP2: requests refused before being sent

	stream streamState // Events: the stream being read
}

func (c *client) loop(ctx context.Context, stop time.Time) {
	defer c.drop()
	c.recs = make([]Record, 0, 4096)
	dialer := net.Dialer{}
	if c.cfg.Proto == Events {
		stopStreams := c.watchStop(ctx, stop)
		defer stopStreams()
	}
	for ctx.Err() == nil && time.Now().Before(stop) && !closed(c.cfg.Stop) {
		slow := c.share >= 1 || c.share > 0 && c.rng.Float64() < c.share
		var rec Record
		var err error
		switch c.cfg.Proto {
		case HTTP2:
			var sent bool
			rec, sent, err = c.doH2(ctx, &dialer, slow)
			if !sent {
				continue
			}
		case Events:
			rec, err = c.doStream(ctx, &dialer)
			if errors.Is(err, errStopped) {
				continue // the run ended before the stream was asked for
			}
		default:
			rec, err = c.do(ctx, &dialer, slow)
		}
		c.recs = append(c.recs, rec)
		if err != nil && c.errs[rec.Class] == nil {
			c.errs[rec.Class] = err
		}
		if c.cfg.Think > 0 {
			t := time.NewTimer(c.cfg.Think)
			select {
			case <-ctx.Done():
			case <-c.cfg.Stop:
			case <-t.C:
			}
			t.Stop()
		}
	}
}

// do sends one request and reads its answer. It never retries.
func (c *client) do(ctx context.Context, dialer *net.Dialer, slow bool) (Record, error) {
	t0 := time.Now()
	rec := Record{Start: t0.Sub(c.start), Slow: slow}
	deadline := t0.Add(c.cfg.Timeout)
	gotBytes := false
	resp, err := func() (Response, error) {
		if c.conn != nil && c.cfg.CheckIdle && c.closedByServer() {
			c.drop()
			c.replaced++
		}
		if c.conn == nil {
			if err := c.connect(ctx, dialer, deadline); err != nil {
				return Response{}, err
			}
		} else {
			rec.Reused = true
		}
		if err := c.conn.SetDeadline(deadline); err != nil {
			return Response{}, err
		}
		req := c.fast
		if slow {
			req = c.slow
		}
		if _, err := c.conn.Write(req); err != nil {
			return Response{}, err
		}
		if _, err := c.br.Peek(1); err != nil {
			return Response{}, err
		}
		gotBytes = true
		return ReadResponse(c.br)
	}()
	end := time.Now()
	rec.End = end.Sub(c.start)
	rec.Class = Classify(err, rec.Reused, gotBytes)
	rec.Pid, rec.Generation, rec.Status = int32(resp.Pid), int32(resp.Generation), int16(resp.Status)
	if c.cfg.Observe != nil && (rec.Class == OK || rec.Class == Status) && resp.Pid != 0 {
		c.cfg.Observe(resp.Pid, end)
	}
	if err != nil || resp.Close || c.cfg.Mode == NewConn {
		c.drop()
	}
	return rec, err
}

// closedByServer reports whether the server closed the idle connection
// (CheckIdle): its socket has the end of the stream, or, over TLS, bytes
// (the close_notify alert) that a short read shows to be the end.
func (c *client) closedByServer() bool {
	if c.br.Buffered() > 0 {
		return false
	}
	raw := c.conn
	if tc, ok := raw.(*tls.Conn); ok {
		raw = tc.NetConn()
	}
	switch peekSocket(raw) {
	case peekNothing:
		return false
	case peekEOF:
		return true
	}
	// Bytes on an idle connection: over TLS, most likely the alert.
	if err := c.conn.SetReadDeadline(time.Now().Add(time.Millisecond)); err != nil {
		return true
	}
	_, err := c.br.Peek(1)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return err != nil
}

// connect opens the client's connection: TCP, the TLS handshake when
// configured, then the FirstDelay pause.
func (c *client) connect(ctx context.Context, dialer *net.Dialer, deadline time.Time) error {
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	conn, err := dialer.DialContext(dctx, "tcp", c.cfg.Addr)
	if err != nil {
		return err
	}
	if c.cfg.TLS != nil {
		tc := tls.Client(conn, c.cfg.TLS)
		if err := tc.HandshakeContext(dctx); err != nil {
			_ = conn.Close() // the handshake's error is the outcome
			return fmt.Errorf("tls handshake: %w", err)
		}
		conn = tc
	}
	c.setConn(conn)
	if c.cfg.FirstDelay > 0 {
		t := time.NewTimer(c.cfg.FirstDelay)
		defer t.Stop()
		select {
		case <-dctx.Done():
			return dctx.Err()
		case <-t.C:
		}
	}
	return nil
}

func (c *client) setConn(conn net.Conn) {
	c.conn = conn
	if c.br == nil {
		c.br = bufio.NewReaderSize(conn, 4096)
	} else {
		c.br.Reset(conn)
	}
}

func (c *client) drop() {
	if c.conn != nil {
		_ = c.conn.Close() // the request's outcome is already recorded
		c.conn = nil
	}
	if c.h2 != nil {
		c.h2.close()
		c.h2 = nil
	}
}

func closed(ch <-chan struct{}) bool {
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

//go:build linux

package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/http2"
)

// Errors of http2.ClientConn.RoundTrip for a request the server provably
// did not process (x/net/http2 does not export them; its Transport retries
// exactly these, canRetryError).
const (
	errTextGotGoAway = "http2: Transport received Server's graceful shutdown GOAWAY" // stream ID above GOAWAY's last stream ID
	errTextUnusable  = "http2: client conn not usable"                               // nothing sent: GOAWAY came after ReserveNewRequest
)

// classified is a failure with its class for load.classify.
type classified struct {
	class string
	err   error
}

func (c classified) Error() string { return c.err.Error() }
func (c classified) Unwrap() error { return c.err }

func classOf(err error) string {
	if c, ok := errors.AsType[classified](err); ok {
		return c.class
	}
	return "failed"
}

// h2Class sorts a RoundTrip error: "not processed" when the protocol proves
// the server never handled the request, "other" when it may have.
func h2Class(err error) string {
	if se, ok := errors.AsType[http2.StreamError](err); ok && se.Code == http2.ErrCodeRefusedStream {
		return "not processed (REFUSED_STREAM)"
	}
	if err.Error() == errTextGotGoAway {
		return "not processed (stream above GOAWAY's last stream ID)"
	}
	return "other"
}

// h2Slot is one HTTP/2 connection at a time, shared by several senders.
// A connection that can take no new request (GOAWAY received, or closed)
// is replaced by a new one: that is no failure.
//
// It uses x/net/http2's ClientConn, deprecated for net/http's own since
// Go 1.26, on purpose: its RoundTrip never retries, and ReserveNewRequest
// and State show the GOAWAY.
//
//nolint:staticcheck // x/net/http2's ClientConn on purpose, see above
type h2Slot struct {
	e    *example
	l    *load
	conf *tls.Config
	tr   *http2.Transport

	mu   sync.Mutex
	cc   *http2.ClientConn
	all  []*http2.ClientConn
	sent map[*http2.ClientConn]int // requests reserved on each connection
}

// reserve returns a connection with a stream reserved for the caller's
// next RoundTrip, and whether it is the connection's first request.
//
//nolint:staticcheck // x/net/http2's ClientConn on purpose, see h2Slot
func (s *h2Slot) reserve() (cc *http2.ClientConn, first bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cc != nil {
		if s.cc.ReserveNewRequest() {
			s.sent[s.cc]++
			return s.cc, s.sent[s.cc] == 1, nil
		}
		if s.cc.State().Closed {
			s.l.note("conns replaced, closed")
		} else {
			s.l.note("conns replaced, closing (GOAWAY)")
		}
		s.cc = nil
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: wait}, Config: s.conf}
	c, err := d.Dial("tcp", s.e.Addr)
	if err != nil {
		return nil, false, classified{"dial", fmt.Errorf("tls dial: %w", err)}
	}
	if p := c.(*tls.Conn).ConnectionState().NegotiatedProtocol; p != "h2" {
		_ = c.Close()
		return nil, false, classified{"dial", fmt.Errorf("ALPN chose %q, want h2", p)}
	}
	cc, err = s.tr.NewClientConn(c)
	if err != nil {
		_ = c.Close()
		return nil, false, classified{"dial", fmt.Errorf("new client conn: %w", err)}
	}
	s.all = append(s.all, cc)
	if !cc.ReserveNewRequest() {
		// GOAWAY (or a close) came with the server's SETTINGS: a
		// connection accepted by a generation that began to drain. The
		// next step dials again.
		return nil, false, notSent{"a new connection refused its first request (GOAWAY before it)"}
	}
	s.cc = cc
	s.sent[cc] = 1
	s.l.note("conns")
	return cc, true, nil
}

//nolint:staticcheck // x/net/http2's ClientConn on purpose, see h2Slot
func newH2Slot(e *example, l *load, conf *tls.Config) *h2Slot {
	return &h2Slot{e: e, l: l, conf: conf, tr: &http2.Transport{}, sent: map[*http2.ClientConn]int{}}
}

func (s *h2Slot) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, cc := range s.all {
		_ = cc.Close()
	}
}

// sender returns the step of a client sending requests on s, one at a
// time; every 16th sleeps a few milliseconds in the handler, so that
// drains find requests in flight.
func (s *h2Slot) sender(n int) func(context.Context) error {
	i := n
	return func(ctx context.Context) error {
		i++
		cc, first, err := s.reserve()
		if err != nil {
			return err
		}
		path := "/"
		if i%16 == 0 {
			path = "/?ms=" + strconv.Itoa(1+i%20)
		}
		ctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+s.e.Addr+path, nil)
		if err != nil {
			return classified{"other", err}
		}
		resp, err := cc.RoundTrip(req)
		if err != nil && err.Error() == errTextUnusable {
			// As if ReserveNewRequest had said no: the connection is
			// replaced at the next step.
			return notSent{"GOAWAY between ReserveNewRequest and RoundTrip"}
		}
		if err != nil {
			class := h2Class(err)
			if first {
				class += ", first request on its connection"
			}
			return classified{class, fmt.Errorf("round trip %s: %w", path, err)}
		}
		_, err = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return classified{"other", fmt.Errorf("read body %s: %w", path, err)}
		}
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Pid") == "" {
			return classified{"other", fmt.Errorf("%s: status %s, X-Pid %q", path, resp.Status, resp.Header.Get("X-Pid"))}
		}
		return nil
	}
}

// TestHTTP2AcrossUpgrades: HTTP/2 over TLS with http2.ClientConn used
// directly (no Transport, so nothing is retried), requesting continuously
// across the upgrades; a connection that got GOAWAY is replaced, which is
// no failure. Two loads at once:
//
//   - one stream at a time on each connection: every request sent must be
//     answered, none refused;
//   - three streams at a time on each connection: no request the server
//     took may be lost ("other"), but some are refused, and only counted.
//     net/http's HTTP/2 server sends one GOAWAY, with the last stream it
//     has read (no two-step GOAWAY as RFC 9113 6.8 suggests), so a stream
//     the client sent a moment before is refused: not processed, which
//     the protocol lets any client retry safely (x/net's Transport does).
func TestHTTP2AcrossUpgrades(t *testing.T) {
	cert := newTestCert(t)
	e := newExample(t, cert)
	one := newLoad(t, "h2 requests, one stream at a time per connection")
	one.classify = classOf
	three := newLoad(t, "h2 requests, three streams at a time per connection")
	three.classify = classOf
	three.tolerate = func(class string) bool { return strings.HasPrefix(class, "not processed") }
	for _, x := range []struct {
		l              *load
		conns, senders int
	}{{one, 4, 1}, {three, 2, 3}} {
		for range x.conns {
			s := newH2Slot(e, x.l, cert.client("h2"))
			t.Cleanup(s.close)
			x.l.run(x.senders, func(i int) (func(context.Context) error, func()) { return s.sender(i), nil })
		}
	}
	e.upgradeUnder(t, upgrades, one, three)
}

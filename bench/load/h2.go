package load

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
	"time"

	"golang.org/x/net/http2"
)

// h2conn is one HTTP/2 connection of a client: an x/net/http2 ClientConn
// used directly, so that nothing retries a request behind the count (the
// retries of http2.Transport live in its RoundTrip, not in ClientConn's).
type h2conn struct {
	cc     *http2.ClientConn //nolint:staticcheck // ClientConn used directly: its replacement, net/http.ClientConn, dials itself
	conn   net.Conn
	served bool // it has carried an answer
}

func (h *h2conn) close() {
	_ = h.cc.Close() // one request at a time: nothing in flight to lose
	_ = h.conn.Close()
}

// The texts of x/net/http2's unexported errors this generator must tell
// apart (transport_common.go).
const (
	h2Unusable  = "http2: client conn not usable"                               // refused before sending
	h2GotGoAway = "http2: Transport received Server's graceful shutdown GOAWAY" // sent, not processed
)

var errNoH2 = errors.New("server did not negotiate h2")

// h2transport configures the ClientConns; it is never used to RoundTrip.
var h2transport = &http2.Transport{} //nolint:staticcheck // ClientConn used directly: its replacement, net/http.ClientConn, dials itself

// doH2 sends one request over the client's HTTP/2 connection, replacing
// the connection first when it can take no new request. sent is false when
// the ClientConn refused the request before sending it (it became unusable
// since the check): no record, the connection is replaced.
func (c *client) doH2(ctx context.Context, dialer *net.Dialer, slow bool) (rec Record, sent bool, err error) {
	if c.h2 != nil && !c.h2.cc.CanTakeNewRequest() {
		c.h2.close()
		c.h2 = nil
		c.replaced++
	}
	t0 := time.Now()
	rec = Record{Start: t0.Sub(c.start), Slow: slow}
	deadline := t0.Add(c.cfg.Timeout)
	gotBytes := false
	var resp *http.Response
	err = func() error {
		if c.h2 == nil {
			h, err := c.dialH2(ctx, dialer, deadline)
			if err != nil {
				return err
			}
			c.h2 = h
		} else {
			rec.Reused = c.h2.served
		}
		rctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		path := "/"
		if slow {
			path = "/?ms=" + strconv.Itoa(c.cfg.SlowMS)
		}
		req, err := http.NewRequestWithContext(rctx, http.MethodGet, "https://"+c.cfg.Addr+path, nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", "baton-bench")
		resp, err = c.h2.cc.RoundTrip(req)
		if err != nil {
			return err
		}
		gotBytes = true
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return fmt.Errorf("read body: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			return &StatusError{Status: resp.StatusCode}
		}
		return nil
	}()
	if err != nil && strings.Contains(err.Error(), h2Unusable) {
		c.h2.close()
		c.h2 = nil
		c.unsent++
		return rec, false, err
	}
	end := time.Now()
	rec.End = end.Sub(c.start)
	rec.Class = classifyH2(err, rec.Reused, gotBytes)
	if resp != nil {
		rec.Status = int16(resp.StatusCode)
		pid, _ := strconv.Atoi(resp.Header.Get("X-Pid"))
		gen, _ := strconv.Atoi(resp.Header.Get("X-Generation"))
		rec.Pid, rec.Generation = int32(pid), int32(gen)
		if c.cfg.Observe != nil && (rec.Class == OK || rec.Class == Status) && pid != 0 {
			c.cfg.Observe(pid, end)
		}
		if c.h2 != nil {
			c.h2.served = true
		}
	}
	if err != nil && c.h2 != nil {
		// A failed request ends its connection, as in HTTP/1.1 mode: a
		// fresh one is not blamed for the old one's state.
		c.h2.close()
		c.h2 = nil
	}
	return rec, true, err
}

// dialH2 connects, does the TLS handshake with ALPN h2 and starts a
// ClientConn (which writes the preface and its SETTINGS).
func (c *client) dialH2(ctx context.Context, dialer *net.Dialer, deadline time.Time) (*h2conn, error) {
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	conn, err := dialer.DialContext(dctx, "tcp", c.cfg.Addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(conn, c.cfg.TLS)
	if err := tc.HandshakeContext(dctx); err != nil {
		_ = conn.Close() // the handshake's error is the outcome
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
		_ = tc.Close()
		return nil, fmt.Errorf("%w (ALPN %q)", errNoH2, p)
	}
	cc, err := h2transport.NewClientConn(tc) //nolint:staticcheck // ClientConn used directly: its replacement, net/http.ClientConn, dials itself
	if err != nil {
		_ = tc.Close()
		return nil, fmt.Errorf("http2 client conn: %w", err)
	}
	return &h2conn{cc: cc, conn: tc}, nil
}

// classifyH2 is Classify with HTTP/2's own outcomes first.
func classifyH2(err error, reused, gotBytes bool) Class {
	if err == nil {
		return OK
	}
	var gae http2.GoAwayError //nolint:staticcheck // what this ClientConn returns
	var se http2.StreamError
	switch {
	case strings.Contains(err.Error(), h2GotGoAway):
		return GoAwayRefused
	case errors.As(err, &gae):
		return GoAwayLost
	case errors.As(err, &se):
		return StreamReset
	}
	return Classify(err, reused, gotBytes)
}

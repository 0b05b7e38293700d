//go:build linux

package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// lateClient returns the step of a client that connects, waits delay and
// only then sends its first request (HTTP/1.1, Connection: close), which
// must get a full response. With tlsConf it speaks TLS: the handshake at
// once, then the delay, or with handshakeLate even the handshake after the
// delay. A response from a generation that is no longer the current one is
// noted: the connection was accepted before a drain began.
func lateClient(e *example, l *load, tlsConf *tls.Config, delay time.Duration, handshakeLate bool) func(context.Context) error {
	return func(ctx context.Context) error {
		raw, err := net.DialTimeout("tcp", e.Addr, wait)
		if err != nil {
			return fmt.Errorf("dial: %w", err)
		}
		defer raw.Close()
		stop := context.AfterFunc(ctx, func() { _ = raw.Close() })
		defer stop()
		_ = raw.SetDeadline(time.Now().Add(wait))
		conn := raw
		var tc *tls.Conn
		if tlsConf != nil {
			tc = tls.Client(raw, tlsConf)
			conn = tc
			if !handshakeLate {
				if err := tc.Handshake(); err != nil {
					return fmt.Errorf("tls handshake: %w", err)
				}
			}
		}
		sleep(ctx, delay)
		if tc != nil && handshakeLate {
			if err := tc.Handshake(); err != nil {
				return fmt.Errorf("tls handshake after %s: %w", delay, err)
			}
		}
		if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: "+e.Addr+"\r\nConnection: close\r\n\r\n"); err != nil {
			return fmt.Errorf("write after %s: %w", delay, err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			return fmt.Errorf("read response after %s: %w", delay, err)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return fmt.Errorf("read body after %s: %w", delay, err)
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %s", resp.Status)
		}
		pid, err := strconv.Atoi(resp.Header.Get("X-Pid"))
		if err != nil {
			return fmt.Errorf("X-Pid %q", resp.Header.Get("X-Pid"))
		}
		if pid != e.PID() {
			l.note("answered while draining")
		}
		return nil
	}
}

// lateLoads starts, for each delay, clients that send their first request
// that late, and returns their loads.
func lateLoads(t *testing.T, e *example, tlsConf *tls.Config, handshakeLate bool, clients int) []*load {
	var loads []*load
	for _, delay := range []time.Duration{300 * time.Millisecond, time.Second} {
		name := "plain"
		if tlsConf != nil {
			name = "tls, handshake at once"
			if handshakeLate {
				name = "tls, handshake late"
			}
		}
		l := newLoad(t, fmt.Sprintf("%s, request %s after connect", name, delay))
		l.run(clients, func(int) (func(context.Context) error, func()) {
			return lateClient(e, l, tlsConf, delay, handshakeLate), nil
		})
		loads = append(loads, l)
	}
	return loads
}

// noDrainCap lifts the cap on draining generations: each drain lasts as
// long as the late clients wait, up to a second, while an upgrade comes
// every few milliseconds, so dozens of generations drain at once, more
// than handoff.DefaultMaxDraining, beyond which the oldest are killed.
const noDrainCap = "-max-draining=-1"

// TestLateFirstRequest: connections that send their first request 300 ms
// or 1 s after they were accepted get a full response, also when the
// generation that accepted them hands over meanwhile. Clients never retry.
func TestLateFirstRequest(t *testing.T) {
	e := newExample(t, nil, noDrainCap)
	loads := lateLoads(t, e, nil, false, 16)
	e.upgradeUnder(t, upgrades, loads...)
}

// TestLateFirstRequestTLS is TestLateFirstRequest over TLS: clients that
// handshake at once and send their request late, and clients that even
// start the handshake late.
func TestLateFirstRequestTLS(t *testing.T) {
	cert := newTestCert(t)
	e := newExample(t, cert, noDrainCap)
	conf := cert.client("http/1.1")
	loads := append(lateLoads(t, e, conf, false, 8), lateLoads(t, e, conf, true, 8)...)
	e.upgradeUnder(t, upgrades, loads...)
}

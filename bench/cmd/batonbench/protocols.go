//go:build linux

package main

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/batonhq/baton/bench/load"
)

// protocolScenarios are the scenarios of the protocol table, run for the
// peers with protocols set: clients that speak late, HTTP/2, and
// server-sent event streams, each across upgrades every 400 ms.
func protocolScenarios(scaled func(time.Duration) time.Duration) []scenario {
	const every = 400 * time.Millisecond
	late := load.Config{Clients: 32, Duration: scaled(20 * time.Second), Mode: load.NewConn, FirstDelay: 300 * time.Millisecond}
	return []scenario{
		{name: "late-first-request", load: late, every: every, drainWait: 10 * time.Second, protocols: true, probe: true},
		{name: "late-first-request/tls", load: late, every: every, drainWait: 10 * time.Second, protocols: true, probe: true, tls: true},
		{
			name:      "h2",
			load:      load.Config{Clients: 8, Duration: scaled(20 * time.Second), Proto: load.HTTP2, SlowShare: 0.02, SlowMS: 50, Think: time.Millisecond},
			every:     every,
			drainWait: 10 * time.Second,
			protocols: true, probe: true, tls: true,
		},
		{
			name:      "sse",
			load:      load.Config{Clients: 16, Duration: scaled(20 * time.Second), Proto: load.Events},
			every:     every,
			drainWait: 10 * time.Second,
			protocols: true, probe: true,
		},
	}
}

// summarizeProtocols adds the protocol table's counts to r.
func summarizeProtocols(r *row, res, probe *load.Result) {
	for _, rec := range res.Records {
		r.Events += int(rec.Events)
	}
	r.AbruptEnds = r.Failures[load.AbruptEnd.String()]
	r.Replaced, r.Unsent = res.Replaced, res.Unsent
	if probe != nil {
		c := load.Count(probe.Records)
		r.ProbeRequests, r.ProbeFailed, r.ProbeFailures = c.Total(), c.Failed(), c.Failures()
	}
}

// checkEvents opens GET /events once and checks that the answer is a 200
// text/event-stream: a server without the handler answers something else.
func checkEvents(addr string, tc *tls.Config, timeout time.Duration) error {
	var c net.Conn
	var err error
	if tc != nil {
		c, err = tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", addr, tc)
	} else {
		c, err = net.DialTimeout("tcp", addr, timeout)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(load.AppendEventsRequest(nil)); err != nil {
		return err
	}
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		return fmt.Errorf("GET /events: %w", err)
	}
	if !strings.Contains(line, " 200 ") {
		return fmt.Errorf("%w: GET /events answers %q", errMissing, strings.TrimSpace(line))
	}
	for {
		h, err := br.ReadString('\n')
		if errors.Is(err, io.EOF) || h == "\r\n" || h == "\n" {
			break
		}
		if err != nil {
			return fmt.Errorf("GET /events: %w", err)
		}
		name, value, _ := strings.Cut(h, ":")
		if strings.EqualFold(strings.TrimSpace(name), "content-type") && strings.HasPrefix(strings.TrimSpace(value), "text/event-stream") {
			return nil
		}
	}
	return fmt.Errorf("%w: GET /events is not text/event-stream", errMissing)
}

//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// sseClient returns the step of a client that reads one GET /events stream
// to its end. The end must be a proper end of the chunked body (io.EOF
// after the last chunk), never a connection closed or reset in the middle
// (io.ErrUnexpectedEOF and the like: "abrupt end"). Each event's data must
// be the pid of the generation that answered.
func sseClient(e *example, l *load) func(context.Context) error {
	return func(ctx context.Context) error {
		c, err := net.DialTimeout("tcp", e.Addr, wait)
		if err != nil {
			return classified{"dial", fmt.Errorf("dial: %w", err)}
		}
		defer c.Close()
		stop := context.AfterFunc(ctx, func() { _ = c.Close() })
		defer stop()
		_ = c.SetDeadline(time.Now().Add(wait))
		req := "GET /events HTTP/1.1\r\nHost: " + e.Addr + "\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n"
		if _, err := io.WriteString(c, req); err != nil {
			return classified{"other", fmt.Errorf("write: %w", err)}
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return classified{"other", fmt.Errorf("read response: %w", err)}
		}
		defer resp.Body.Close()
		pid := resp.Header.Get("X-Pid")
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" || pid == "" {
			return classified{"other", fmt.Errorf("status %s, Content-Type %q, X-Pid %q", resp.Status, resp.Header.Get("Content-Type"), pid)}
		}
		if !slices.Equal(resp.TransferEncoding, []string{"chunked"}) {
			return classified{"other", fmt.Errorf("transfer encoding %q, want chunked", resp.TransferEncoding)}
		}
		body := bufio.NewReader(resp.Body)
		events := 0
		defer func() { l.add("events", events) }()
		for {
			line, err := body.ReadString('\n')
			if err == io.EOF && line == "" {
				break
			}
			if err != nil {
				return classified{"abrupt end", fmt.Errorf("stream of %s after %d events: %w", pid, events, err)}
			}
			if data, ok := strings.CutPrefix(line, "data: "); ok {
				if data != pid+"\n" {
					return classified{"other", fmt.Errorf("stream of %s: event data %q", pid, data)}
				}
				events++
			}
		}
		if events == 0 {
			return classified{"other", fmt.Errorf("stream of %s ended without an event", pid)}
		}
		if events > 1 {
			l.note("streams of more than one event")
		}
		return nil
	}
}

// TestEventsAcrossUpgrades: clients read GET /events streams across the
// upgrades and open a new one after each end. Every stream ends when its
// generation drains, with a proper end of the chunked body.
func TestEventsAcrossUpgrades(t *testing.T) {
	e := newExample(t, nil)
	l := newLoad(t, "SSE streams")
	l.classify = classOf
	l.run(8, func(int) (func(context.Context) error, func()) { return sseClient(e, l), nil })
	// Mostly as fast as the successors start; each tenth generation serves
	// a few events' worth before it is upgraded.
	for range upgrades / 10 {
		e.upgrade(9)
		time.Sleep(4 * eventInterval)
		e.upgrade(1)
	}
	// The streams on the current generation end at its drain: upgrade
	// once more, and again if a client opened a stream meanwhile.
	l.stop()
	for {
		e.upgrade(1)
		if l.waitFor(500 * time.Millisecond) {
			break
		}
	}
	l.check(t, e)
}

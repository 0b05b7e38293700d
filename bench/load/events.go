package load

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrNotEventStream is wrapped by the error of a 200 answer to GET /events
// that is not text/event-stream (a server without an /events handler).
var ErrNotEventStream = errors.New("not an event stream")

// streamState lets the client's stop watcher interrupt the stream being
// read: once stopping is set the connection's deadline is in the past, and
// the read's error is the client's own doing, not the server's.
type streamState struct {
	mu       sync.Mutex
	conn     net.Conn
	stopping bool
}

func (s *streamState) set(conn net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conn = conn
	if s.stopping && conn != nil {
		_ = conn.SetDeadline(time.Unix(1, 0)) // interrupts the read at once
	}
	return s.stopping
}

func (s *streamState) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopping = true
	if s.conn != nil {
		_ = s.conn.SetDeadline(time.Unix(1, 0)) // interrupts the read at once
	}
}

// extend gives the stream's connection a fresh deadline, unless the
// client is stopping (the past deadline stays).
func (s *streamState) extend(timeout time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopping && s.conn != nil {
		_ = s.conn.SetDeadline(time.Now().Add(timeout)) // fails only on a closed conn: the read says so
	}
}

func (s *streamState) stopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

// watchStop interrupts the client's stream when the run ends (ctx, Stop,
// or the end of the duration); the returned func ends the watcher.
func (c *client) watchStop(ctx context.Context, stop time.Time) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTimer(time.Until(stop))
		defer t.Stop()
		select {
		case <-done:
			return
		case <-ctx.Done():
		case <-c.cfg.Stop:
		case <-t.C:
		}
		c.stream.stop()
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// doStream opens one event stream on a fresh connection and reads it to
// its end. The record
// spans the stream; Events counts its events and Pid is the pid in the
// first event's data (the X-Pid header without events). A stream the
// client itself interrupts at the end of the run is OK.
func (c *client) doStream(ctx context.Context, dialer *net.Dialer) (Record, error) {
	t0 := time.Now()
	rec := Record{Start: t0.Sub(c.start)}
	gotBytes, head := false, false
	err := func() error {
		if err := c.connect(ctx, dialer, t0.Add(c.cfg.Timeout)); err != nil {
			return err
		}
		if c.stream.set(c.conn) {
			return errStopped
		}
		c.stream.extend(c.cfg.Timeout)
		if _, err := c.conn.Write(AppendEventsRequest(nil)); err != nil {
			return err
		}
		if _, err := c.br.Peek(1); err != nil {
			return err
		}
		gotBytes = true
		resp, fr, err := readHead(c.br)
		if err != nil {
			return err
		}
		rec.Status, rec.Pid = int16(resp.Status), int32(resp.Pid)
		if resp.Status != 200 {
			return discardBody(c.br, fr, &StatusError{Status: resp.Status})
		}
		if mt, _, _ := strings.Cut(resp.ContentType, ";"); strings.TrimSpace(mt) != "text/event-stream" {
			return discardBody(c.br, fr, fmt.Errorf("%w: Content-Type %q", ErrNotEventStream, resp.ContentType))
		}
		head = true
		var body io.Reader
		if fr.chunked {
			body = &chunkReader{r: c.br, extend: func() { c.stream.extend(c.cfg.Timeout) }}
		} else {
			body = &deadlineReader{r: c.br, extend: func() { c.stream.extend(c.cfg.Timeout) }}
		}
		return readEvents(bufio.NewReaderSize(body, 512), func(data string) {
			rec.Events++
			pid, _ := strconv.Atoi(strings.TrimSpace(data))
			if rec.Events == 1 && pid != 0 {
				rec.Pid = int32(pid)
			}
			if c.cfg.Observe != nil && pid != 0 {
				c.cfg.Observe(pid, time.Now())
			}
		}, fr.chunked)
	}()
	rec.End = time.Since(c.start)
	switch {
	case err == nil:
		rec.Class = OK
	case errors.Is(err, errStopped):
		c.drop()
		return rec, err
	case c.stream.stopped():
		rec.Class, err = OK, nil
	case head:
		rec.Class = AbruptEnd
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			rec.Class = Timeout
		}
	default:
		rec.Class = Classify(err, rec.Reused, gotBytes)
	}
	c.stream.set(nil)
	// Every stream gets a fresh connection: a stream's head went out
	// before the server knew it would drain, so it cannot say
	// "Connection: close", and reusing the connection would measure
	// HTTP/1.1's idle-close race (upgrade/keep-alive does), not streams.
	c.drop()
	return rec, err
}

var (
	errStopped = errors.New("stopped")
	// errEndless: a stream without chunked framing cannot end cleanly.
	errEndless = errors.New("event stream body not chunked")
)

// AppendEventsRequest appends a GET /events request to b.
func AppendEventsRequest(b []byte) []byte {
	b = append(b, "GET "+EventsPath+" HTTP/1.1\r\nHost: bench\r\nUser-Agent: baton-bench\r\nAccept: text/event-stream\r\n\r\n"...)
	return b
}

func discardBody(r *bufio.Reader, fr framing, err error) error {
	var rerr error
	switch {
	case fr.none:
	case fr.chunked:
		_, rerr = readChunked(r)
	case fr.length >= 0:
		_, rerr = io.CopyN(io.Discard, r, fr.length)
	}
	if rerr != nil {
		return fmt.Errorf("read body: %w (after %w)", rerr, err)
	}
	return err
}

// readEvents parses server-sent events from r until its end, calling
// event with the data of each complete event. With chunked set the end of
// r (io.EOF from chunkReader) is the chunked end of body: a clean end. An
// end otherwise is io.ErrUnexpectedEOF.
func readEvents(r *bufio.Reader, event func(data string), chunked bool) error {
	var data strings.Builder
	has := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				if chunked && line == "" {
					return nil
				}
				return io.ErrUnexpectedEOF
			}
			return err
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			if has {
				event(data.String())
			}
			data.Reset()
			has = false
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		if field == "data" {
			if has {
				data.WriteByte('\n')
			}
			data.WriteString(strings.TrimPrefix(value, " "))
			has = true
		}
	}
}

// chunkReader reads a chunked body; io.EOF is the chunked end of body
// (the last chunk and the trailers read). extend runs before each chunk
// size line (a fresh read deadline).
type chunkReader struct {
	r      *bufio.Reader
	extend func()
	left   int64 // of the current chunk
	done   bool
	budget int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.done {
		return 0, io.EOF
	}
	if c.left == 0 {
		if c.budget == 0 {
			c.budget = maxHeaderBytes
		}
		c.extend()
		line, err := readLine(c.r, &c.budget)
		if err != nil {
			return 0, err
		}
		size, _, _ := strings.Cut(line, ";")
		n, err := strconv.ParseInt(strings.TrimSpace(size), 16, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%w: chunk size %q", ErrMalformed, line)
		}
		if n == 0 {
			for { // trailers up to the empty line
				line, err := readLine(c.r, &c.budget)
				if err != nil {
					return 0, err
				}
				if line == "" {
					c.done = true
					return 0, io.EOF
				}
			}
		}
		c.left = n
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	if err == nil && c.left == 0 {
		line, lerr := readLine(c.r, &c.budget)
		if lerr != nil {
			return n, lerr
		}
		if line != "" {
			return n, fmt.Errorf("%w: no CRLF after chunk", ErrMalformed)
		}
		c.budget = maxHeaderBytes
	}
	return n, err
}

// deadlineReader reads a body that ends with the connection, extend run
// before each read; its end is never clean (errEndless).
type deadlineReader struct {
	r      *bufio.Reader
	extend func()
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	d.extend()
	n, err := d.r.Read(p)
	if errors.Is(err, io.EOF) {
		err = fmt.Errorf("%w: %w", errEndless, io.ErrUnexpectedEOF)
	}
	return n, err
}

package rawhttp

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// DefaultTimeout bounds a request, dial included, when Client.Timeout is
// zero.
const DefaultTimeout = 10 * time.Second

// Client makes one request at a time to Addr. With KeepAlive it reuses its
// connection until the server closes it; otherwise every request opens a
// new one and asks for "Connection: close". Not safe for concurrent use.
type Client struct {
	Addr      string // host:port
	KeepAlive bool
	// Timeout bounds each request from its start, the dial included; zero
	// means DefaultTimeout.
	Timeout time.Duration
	// Dial opens a connection; nil means a net.Dialer's DialContext. The
	// context carries the request's deadline.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// UserAgent is sent as the User-Agent header when it is not empty.
	UserAgent string

	conn net.Conn
	br   *bufio.Reader
}

// StatusError is the error of a complete response whose status is not 200.
type StatusError struct {
	Code   int
	Status string // as in the status line: "503 Service Unavailable"
}

func (e *StatusError) Error() string { return "status " + e.Status }

// Get requests path and returns the response header. A status other than
// 200 is a *StatusError; any failure closes the connection, so that the
// next Get opens a new one.
func (c *Client) Get(path string) (http.Header, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	deadline := time.Now().Add(timeout)
	if c.conn == nil {
		dial := c.Dial
		if dial == nil {
			dial = (&net.Dialer{}).DialContext
		}
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		conn, err := dial(ctx, "tcp", c.Addr)
		cancel()
		if err != nil {
			return nil, err
		}
		c.conn, c.br = conn, bufio.NewReader(conn)
	}
	_ = c.conn.SetDeadline(deadline)
	req := "GET " + path + " HTTP/1.1\r\nHost: " + c.Addr + "\r\n"
	if c.UserAgent != "" {
		req += "User-Agent: " + c.UserAgent + "\r\n"
	}
	if !c.KeepAlive {
		req += "Connection: close\r\n"
	}
	if _, err := io.WriteString(c.conn, req+"\r\n"); err != nil {
		c.Close()
		return nil, fmt.Errorf("write: %w", err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("read response: %w", err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if err != nil || !c.KeepAlive || resp.Close || resp.StatusCode != http.StatusOK {
		c.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &StatusError{Code: resp.StatusCode, Status: resp.Status}
	}
	return resp.Header, nil
}

// Close closes the connection, if any; the next Get opens a new one.
func (c *Client) Close() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn, c.br = nil, nil
	}
}

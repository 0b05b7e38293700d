package rawhttp

import (
	"bufio"
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
	Timeout   time.Duration

	conn net.Conn
	br   *bufio.Reader
}

// Get requests path and returns the response header. A status other than
// 200 is an error; any failure closes the connection.
func (c *Client) Get(path string) (http.Header, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if c.conn == nil {
		conn, err := net.DialTimeout("tcp", c.Addr, timeout)
		if err != nil {
			return nil, err
		}
		c.conn, c.br = conn, bufio.NewReader(conn)
	}
	_ = c.conn.SetDeadline(time.Now().Add(timeout))
	req := "GET " + path + " HTTP/1.1\r\nHost: " + c.Addr + "\r\n"
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
	if err != nil || !c.KeepAlive || resp.Close {
		c.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
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

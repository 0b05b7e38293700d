//go:build linux

package drain

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testproc"
)

// wait bounds every wait of the tests; it is never reached when they pass.
const wait = 30 * time.Second

func TestMain(m *testing.M) { testproc.Main(m) }

// serveErr is Serve's result as the tests expect it: nil after Shutdown.
func serveErr(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// httpConn is one raw HTTP/1.1 client connection: it never retries.
type httpConn struct {
	net.Conn
	br *bufio.Reader
}

// mustDial is dialHTTP for a test: a failure ends it, the connection is
// closed at its end.
func mustDial(t *testing.T, network, addr string) *httpConn {
	t.Helper()
	c, err := dialHTTP(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// checkLeaks fails the test when it leaves an fd or a goroutine behind.
func checkLeaks(t *testing.T) {
	t.Helper()
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
}

func dialHTTP(network, addr string) (*httpConn, error) {
	c, err := net.DialTimeout(network, addr, wait)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(wait))
	return &httpConn{Conn: c, br: bufio.NewReader(c)}, nil
}

func (c *httpConn) send(path string) error {
	_, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: t\r\n\r\n")
	return err
}

// receive reads one response; a status other than 200 is an error.
func (c *httpConn) receive() (http.Header, error) {
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	if resp.Close {
		resp.Header.Set("Connection", "close")
	}
	return resp.Header, nil
}

func (c *httpConn) do(path string) (http.Header, error) {
	if err := c.send(path); err != nil {
		return nil, err
	}
	return c.receive()
}

// rawDo makes one request and returns the response (body read).
func (c *httpConn) rawDo(path string) (*http.Response, error) {
	if err := c.send(path); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp, err
}

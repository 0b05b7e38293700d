package notifyrecv

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// MaxMessage is the largest datagram accepted, as in systemd.
const MaxMessage = 4096

// ErrTruncated is returned by Read for a datagram longer than MaxMessage; the
// socket stays usable.
var ErrTruncated = errors.New("notify message truncated")

// Message is one received datagram.
type Message struct {
	PID    int               // sender's pid, 0 when unknown
	UID    int               // sender's uid, -1 when unknown
	Fields map[string]string // KEY=VALUE lines; the last of repeated keys wins
}

// Get returns the value of key and whether it was present.
func (m Message) Get(key string) (string, bool) {
	v, ok := m.Fields[key]
	return v, ok
}

// Parse splits a notify datagram into its KEY=VALUE lines. Lines without
// '=' and empty lines are ignored, as sd_notify receivers do.
func Parse(b []byte) map[string]string {
	f := make(map[string]string)
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if ok && k != "" {
			f[k] = v
		}
	}
	return f
}

// Conn is a listening notify socket.
type Conn struct {
	c    *net.UnixConn
	addr string
}

// DefaultAddress returns a fresh abstract address for the calling process.
func DefaultAddress() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "@baton/notify/" + strconv.Itoa(os.Getpid()) + "/" + hex.EncodeToString(b[:])
}

// Listen opens a notify socket at addr (a path, or "@name" for an abstract
// socket; "" means DefaultAddress()).
func Listen(addr string) (*Conn, error) {
	if addr == "" {
		addr = DefaultAddress()
	}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	if err := passCred(c); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("notify socket %s: %w", addr, err)
	}
	return &Conn{c: c, addr: addr}, nil
}

// Addr returns the value for NOTIFY_SOCKET.
func (c *Conn) Addr() string { return c.addr }

// Read waits for the next datagram. It returns net.ErrClosed (wrapped) after
// Close.
func (c *Conn) Read() (Message, error) {
	buf := make([]byte, MaxMessage+1)
	oob := make([]byte, oobSize)
	n, oobn, flags, _, err := c.c.ReadMsgUnix(buf, oob)
	if err != nil {
		return Message{}, fmt.Errorf("read notify message: %w", err)
	}
	m := Message{UID: -1}
	if err := parseOOB(oob[:oobn], &m); err != nil {
		return Message{}, err
	}
	if n > MaxMessage || flags&msgTrunc != 0 {
		return m, fmt.Errorf("from pid %d: %w", m.PID, ErrTruncated)
	}
	m.Fields = Parse(buf[:n])
	return m, nil
}

// Close closes the socket and, for a path address, removes the path.
func (c *Conn) Close() error {
	err := c.c.Close()
	if strings.HasPrefix(c.addr, "/") {
		if rerr := os.Remove(c.addr); rerr != nil && err == nil && !errors.Is(rerr, os.ErrNotExist) {
			err = rerr
		}
	}
	return err
}

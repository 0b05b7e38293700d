//go:build !linux

package notify

import "context"

// Listener is the manager's side of the protocol; it needs Linux.
type Listener struct{ socket string }

// Listen returns ErrUnsupported outside Linux.
func Listen(socket string) (*Listener, error) {
	return nil, &SocketError{Socket: socket, Op: "listen", Err: ErrUnsupported}
}

// Socket returns the address to put in NOTIFY_SOCKET.
func (l *Listener) Socket() string { return l.socket }

// Receive returns ErrUnsupported outside Linux.
func (l *Listener) Receive(context.Context) (*Message, error) { return nil, ErrUnsupported }

// Close does nothing outside Linux.
func (l *Listener) Close() error { return nil }

package front

import (
	"errors"
	"fmt"
)

var (
	// ErrNotStream is a public socket that is not a listening stream
	// socket (a UDP socket): the front serves HTTP over TCP or unix
	// stream sockets only.
	ErrNotStream = errors.New("not a listening stream socket")
	// ErrNotAccepted is a CMD that did not accept a connection on its
	// private socket in time: it serves something else than the socket it
	// was given at LISTEN_FDS, or nothing.
	ErrNotAccepted = errors.New("the connection to the private socket was not accepted")
	// ErrUnknownGeneration is a generation without private sockets.
	ErrUnknownGeneration = errors.New("unknown generation")
)

// SocketError is an error about one socket, named as in LISTEN_FDNAMES.
type SocketError struct {
	Name string
	Err  error
}

func (e *SocketError) Error() string { return fmt.Sprintf("socket %s: %v", e.Name, e.Err) }

func (e *SocketError) Unwrap() error { return e.Err }

package load

import (
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
)

// Class is the outcome of one request.
type Class uint8

// The outcomes, in the order the report prints them.
const (
	OK        Class = iota
	Refused         // connect: ECONNREFUSED
	Reset           // ECONNRESET or EPIPE
	EOFReused       // EOF before any byte of the answer on a reused connection
	EOFNew          // EOF before any byte of the answer on a fresh connection
	Timeout         // the request's deadline passed
	Status          // an answer other than 200
	// AbruptEnd is an event stream that ended without the chunked end
	// of body after its 200 head (connection closed, reset, or anything
	// malformed in the body).
	AbruptEnd
	// GoAwayRefused is an HTTP/2 request sent and then refused by the
	// server's GOAWAY (its stream id above the GOAWAY's last stream id:
	// not processed).
	GoAwayRefused
	// GoAwayLost is an HTTP/2 request the GOAWAY covered (the server
	// took it) whose connection closed before its answer was complete.
	GoAwayLost
	// StreamReset is an HTTP/2 request whose stream the server reset
	// (RST_STREAM).
	StreamReset
	Other // anything else
	numClasses
)

var classNames = [numClasses]string{"ok", "refused", "reset", "eof-reused", "eof-new", "timeout", "status", "abrupt-end", "goaway-refused", "goaway-lost", "rst-stream", "other"}

func (c Class) String() string {
	if c < numClasses {
		return classNames[c]
	}
	return "class(" + strconv.Itoa(int(c)) + ")"
}

// Classes lists every failure class (OK excluded) in report order.
func Classes() []Class {
	out := make([]Class, 0, numClasses-1)
	for c := Refused; c < numClasses; c++ {
		out = append(out, c)
	}
	return out
}

// Classify gives the class of err, the error of one request (nil is OK).
// reused tells whether the request went over a connection that had already
// carried an answer; gotBytes whether any byte of the answer arrived.
func Classify(err error, reused, gotBytes bool) Class {
	if err == nil {
		return OK
	}
	var se *StatusError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		return Status
	case errors.Is(err, syscall.ECONNREFUSED):
		return Refused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return Reset
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return Timeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		if gotBytes {
			return Other // a truncated answer
		}
		if reused {
			return EOFReused
		}
		return EOFNew
	}
	return Other
}

package activation

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNotActivated is the outcome when the process was not started with
// sockets: LISTEN_PID is not set, names another process, or LISTEN_FDS is
// not set. It is not a failure: the usual reaction is to open the sockets
// oneself. Receive wraps it with the reason; match it with errors.Is.
var ErrNotActivated = errors.New("activation: not socket-activated")

// ErrNoSocket is the outcome of a lookup that found no fd of the wanted
// name and kind. The *LookupError that wraps it lists what the Set holds.
var ErrNoSocket = errors.New("activation: no such socket")

// ErrAmbiguous is the outcome of a lookup that wanted exactly one fd and
// found several of that name and kind.
var ErrAmbiguous = errors.New("activation: more than one socket")

// EnvError reports a malformed activation variable: LISTEN_PID,
// LISTEN_FDS or LISTEN_FDNAMES, with the value it had. Err says what is
// wrong with it.
type EnvError struct {
	Var   string // the variable, e.g. "LISTEN_FDS"
	Value string // its value, as read
	Err   error
}

func (e *EnvError) Error() string {
	return fmt.Sprintf("activation: %s=%s: %v", e.Var, quoteShort(e.Value), e.Err)
}

func (e *EnvError) Unwrap() error { return e.Err }

// FDError reports a system call that failed on an inherited fd.
type FDError struct {
	FD  int
	Op  string // e.g. "set close-on-exec"
	Err error
}

func (e *FDError) Error() string {
	return fmt.Sprintf("activation: fd %d: %s: %v", e.FD, e.Op, e.Err)
}

func (e *FDError) Unwrap() error { return e.Err }

// LookupError reports a lookup by name that did not find exactly what it
// wanted. It wraps ErrNoSocket or ErrAmbiguous.
type LookupError struct {
	Name  string   // the name looked up
	Want  string   // what was wanted, e.g. "listening stream socket"
	Found int      // how many matched (0, or more than one)
	Have  []string // what the Set holds, one entry per fd, in fd order
	Err   error    // ErrNoSocket or ErrAmbiguous
}

func (e *LookupError) Error() string {
	have := "none"
	if len(e.Have) > 0 {
		have = strings.Join(e.Have, ", ")
	}
	if e.Found == 0 {
		return fmt.Sprintf("activation: no %s named %q (have %s)", e.Want, e.Name, have)
	}
	return fmt.Sprintf("activation: %d %ss named %q, want one (have %s)", e.Found, e.Want, e.Name, have)
}

func (e *LookupError) Unwrap() error { return e.Err }

// maxShown bounds how much of a value an error message quotes; EnvError
// keeps the whole value.
const maxShown = 80

// quoteShort quotes s, eliding the middle of a long value.
func quoteShort(s string) string {
	if len(s) <= maxShown {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q...(%d bytes)", s[:maxShown], len(s))
}

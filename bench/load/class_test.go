package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
)

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func opErr(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Err: os.NewSyscallError(op, errno)}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		reused   bool
		gotBytes bool
		want     Class
	}{
		{name: "nil", err: nil, want: OK},
		{name: "refused", err: opErr("dial", syscall.ECONNREFUSED), want: Refused},
		{name: "reset on read", err: opErr("read", syscall.ECONNRESET), reused: true, want: Reset},
		{name: "reset after bytes", err: opErr("read", syscall.ECONNRESET), gotBytes: true, want: Reset},
		{name: "broken pipe on write", err: opErr("write", syscall.EPIPE), reused: true, want: Reset},
		{name: "eof on reused", err: io.EOF, reused: true, want: EOFReused},
		{name: "eof on new", err: io.EOF, want: EOFNew},
		{name: "unexpected eof before bytes", err: io.ErrUnexpectedEOF, reused: true, want: EOFReused},
		{name: "truncated answer", err: fmt.Errorf("read body: %w", io.ErrUnexpectedEOF), gotBytes: true, want: Other},
		{name: "deadline", err: &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, want: Timeout},
		{name: "dial timeout", err: &net.OpError{Op: "dial", Err: timeoutErr{}}, want: Timeout},
		{name: "context deadline", err: context.DeadlineExceeded, want: Timeout},
		{name: "status", err: &StatusError{Status: 503}, gotBytes: true, want: Status},
		{name: "malformed", err: fmt.Errorf("%w: status line", ErrMalformed), gotBytes: true, want: Other},
		{name: "unknown", err: errors.New("boom"), want: Other},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.err, tt.reused, tt.gotBytes); got != tt.want {
				t.Errorf("Classify(%v, reused=%v, gotBytes=%v) = %v, want %v", tt.err, tt.reused, tt.gotBytes, got, tt.want)
			}
		})
	}
}

func TestClassStrings(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range append([]Class{OK}, Classes()...) {
		s := c.String()
		if s == "" || seen[s] {
			t.Errorf("class %d: name %q empty or repeated", c, s)
		}
		seen[s] = true
	}
	if got := Class(200).String(); got != "class(200)" {
		t.Errorf("out of range class = %q", got)
	}
}

//go:build !linux

package control

import (
	"context"
	"errors"
	"net"
	"runtime"
)

var errNoCred = errors.New("peer credentials: not supported on " + runtime.GOOS)

func allowed(*net.UnixConn) error { return errNoCred }

func answeredBy(*net.UnixConn, int) error { return errNoCred }

// listen: abstract sockets are Linux's.
func listen() (*net.UnixListener, error) { return nil, errors.ErrUnsupported }

func dial(context.Context, int) (*net.UnixConn, error) { return nil, errors.ErrUnsupported }

//go:build !linux

package control

import (
	"errors"
	"net"
)

func allowed(*net.UnixConn) error {
	return errors.New("peer credentials: not supported on this platform")
}

func isRefused(error) bool { return false }

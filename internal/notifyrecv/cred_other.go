//go:build !linux

package notifyrecv

import (
	"errors"
	"net"
)

const msgTrunc = 0

var oobSize = 0

func passCred(*net.UnixConn) error {
	return errors.New("SO_PASSCRED: not supported on this platform")
}

func parseOOB([]byte, *Message) error { return nil }

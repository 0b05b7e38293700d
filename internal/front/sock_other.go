//go:build !linux

package front

import (
	"errors"
	"net"
	"os"
)

const maxUnixPath = 108

var errUnsupported = errors.New("front: not supported on this system")

func listenUnix(string) (*os.File, error) { return nil, errUnsupported }

func hasPending(*os.File) (bool, error) { return false, errUnsupported }

func checkStream(*os.File) error { return errUnsupported }

func usable(net.Conn) bool { return true }

//go:build !linux

package front

import (
	"errors"
	"os"
)

const maxUnixPath = 108

var errUnsupported = errors.New("front: not supported on this system")

func listenUnix(string) (*os.File, error) { return nil, errUnsupported }

func hasPending(*os.File) (bool, error) { return false, errUnsupported }

func checkStream(*os.File) error { return errUnsupported }

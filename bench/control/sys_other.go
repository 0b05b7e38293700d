//go:build !unix

package control

import (
	"errors"
	"syscall"
)

// kill has no signals to send here: the benchmark runs on Linux.
func kill(int, syscall.Signal) error { return errors.ErrUnsupported }

func reap(int) {}

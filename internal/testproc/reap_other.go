//go:build !linux

package testproc

import "errors"

// Subreaper is Linux only; elsewhere it returns errors.ErrUnsupported.
func Subreaper() error { return errors.ErrUnsupported }

// Reap does nothing but on Linux.
func Reap(...int) {}

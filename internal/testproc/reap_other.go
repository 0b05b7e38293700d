//go:build !linux

package testproc

import "errors"

// Subreaper is Linux only; elsewhere it returns errors.ErrUnsupported.
func Subreaper() error { return errors.ErrUnsupported }

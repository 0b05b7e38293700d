//go:build !linux

package main

import (
	"errors"
	"syscall"
	"time"
)

func setSubreaper() error { return errors.ErrUnsupported }

// growSignal and shrinkSignal: baton run does not run elsewhere; these
// only let it build (no signal is ever 0).
const (
	growSignal   = syscall.Signal(-1)
	shrinkSignal = syscall.Signal(-2)
)

type exitWatch struct{}

func watchExit(int) *exitWatch { return &exitWatch{} }

func (*exitWatch) wait(time.Duration) (time.Time, bool) { return time.Time{}, false }
func (*exitWatch) stop()                                {}

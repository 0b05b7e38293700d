//go:build !linux

package main

import (
	"errors"
	"time"
)

func setSubreaper() error { return errors.ErrUnsupported }

type exitWatch struct{}

func watchExit(int) *exitWatch { return &exitWatch{} }

func (*exitWatch) wait(time.Duration) (time.Time, bool) { return time.Time{}, false }
func (*exitWatch) stop()                                {}

//go:build !linux

package main

import (
	"context"
	"errors"
)

func terminate(context.Context, int) error { return errors.ErrUnsupported }

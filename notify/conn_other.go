//go:build !linux

package notify

import "time"

// conn is never made outside Linux: Dial fails with ErrUnsupported, and
// FromEnv without NOTIFY_SOCKET gives a disabled Client as everywhere.
type conn struct{}

func dialConn(string, time.Duration) (*conn, error) { return nil, ErrUnsupported }

func (*conn) send([]byte, []int) error { return ErrUnsupported }

func (*conn) close() error { return nil }

func monotonicNow() (time.Duration, error) { return 0, ErrUnsupported }

package accept

import (
	"errors"
	"syscall"
	"time"
)

// Delays of the back-off.
const (
	FirstDelay = 5 * time.Millisecond
	MaxDelay   = time.Second
)

// Backoff is one accept loop's state. The zero value is ready.
type Backoff struct {
	delay time.Duration // 0: not in a burst of errors
	sleep func(time.Duration)
}

// Temporary reports whether err from Accept is one to wait out: the
// process or the system ran out of fds, buffers or memory, or a queued
// connection was reset before it was accepted.
func Temporary(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Wait handles an error from Accept. For a Temporary one it sleeps the
// next delay and returns retry true, and first true when the error starts
// a burst (the one to log). For any other error it returns retry false.
func (b *Backoff) Wait(err error) (retry, first bool) {
	if !Temporary(err) {
		return false, false
	}
	first = b.delay == 0
	if first {
		b.delay = FirstDelay
	} else {
		b.delay = min(2*b.delay, MaxDelay)
	}
	sleep := b.sleep
	if sleep == nil {
		sleep = time.Sleep
	}
	sleep(b.delay)
	return true, first
}

// Reset ends a burst: call it after each successful Accept.
func (b *Backoff) Reset() { b.delay = 0 }

package notify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"
)

// Barrier sends BARRIER=1 alone with exactly one fd attached, the write end
// of a fresh pipe, closes its own copy, and waits until the manager closes
// the copy it received: then the manager has read every message this
// process sent before. It returns nil then, or ctx.Err() itself (not
// wrapped, as http.Server.Shutdown does) when ctx ends first.
//
// A process that notified the manager and is about to exit calls Barrier
// first: the manager attributes a message to its sender's pid only while
// that process is alive. The manager closes the fd whether or not it
// accepted the message (NotifyAccess=), so the wait ends even for a
// process that is no longer the main PID (seen under systemd 252).
//
// On a disabled Client it returns nil at once.
func (c *Client) Barrier(ctx context.Context) error {
	if !c.Enabled() {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("notify: barrier pipe: %w", err)
	}
	defer r.Close()
	fds, err := fileFDs([]*os.File{w})
	if err != nil {
		_ = w.Close()
		return err
	}
	err = c.sendmsg("BARRIER=1", fds)
	runtime.KeepAlive(w)
	if cerr := w.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("notify: barrier pipe: %w", cerr)
	}
	if err != nil {
		return err
	}

	// r is in the runtime's poller (os.Pipe): Read returns io.EOF when the
	// last write end is closed, and a deadline set from ctx interrupts it.
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		_ = r.SetReadDeadline(time.Now())
	})
	var buf [64]byte
	for {
		_, err = r.Read(buf[:]) // a manager writing something is no reason to stop
		if err != nil {
			break
		}
	}
	if !stop() {
		<-fired
	}
	switch {
	case errors.Is(err, io.EOF):
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil:
		return ctx.Err()
	}
	return fmt.Errorf("notify: barrier wait: %w", err)
}

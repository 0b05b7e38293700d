package notify

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testproc"
	"golang.org/x/sys/unix"
)

// TestBarrier: the receiver gets BARRIER=1 alone with exactly one fd, the
// write end of a pipe; Barrier returns nil once the receiver closes it.
func TestBarrier(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	r := newReceiver(t, false)
	c := dialT(t, r)
	done := make(chan error, 1)
	go func() { done <- c.Barrier(t.Context()) }()
	m := r.recv()
	if m.data != "BARRIER=1" {
		t.Errorf("got %q, want BARRIER=1", m.data)
	}
	if m.pid != int32(os.Getpid()) {
		t.Errorf("sender pid %d", m.pid)
	}
	if len(m.files) != 1 {
		t.Fatalf("got %d fds, want 1", len(m.files))
	}
	st, err := m.files[0].Stat()
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("barrier fd is %v, want a pipe", st.Mode())
	}
	flags, err := unix.FcntlInt(m.files[0].Fd(), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	if flags&unix.O_ACCMODE != unix.O_WRONLY {
		t.Errorf("barrier fd flags %#x, want the write end", flags)
	}
	select {
	case err := <-done:
		t.Fatalf("Barrier returned %v before the receiver closed its fd", err)
	default:
	}
	m.closeFiles()
	if err := <-done; err != nil {
		t.Fatalf("Barrier: %v", err)
	}
}

// TestBarrierContext: a receiver that keeps the fd makes Barrier wait for
// ctx, and return ctx.Err() itself.
func TestBarrierContext(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	r := newReceiver(t, true)
	c := dialT(t, r)

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := c.Barrier(ctx); err != context.DeadlineExceeded { //nolint:errorlint // documented: ctx.Err() itself
		t.Errorf("deadline: got %v, want context.DeadlineExceeded", err)
	}
	kept := r.recv() // held until the end of the test

	ctx, cancel = context.WithCancel(t.Context())
	go func() {
		m := r.recv()
		kept.files = append(kept.files, m.files...)
		cancel()
	}()
	if err := c.Barrier(ctx); err != context.Canceled { //nolint:errorlint // documented: ctx.Err() itself
		t.Errorf("cancel: got %v, want context.Canceled", err)
	}

	// An ended context sends nothing.
	if err := c.Barrier(ctx); err != context.Canceled { //nolint:errorlint // documented: ctx.Err() itself
		t.Errorf("ended ctx: got %v", err)
	}
	r.expectNothing()
	kept.closeFiles()
}

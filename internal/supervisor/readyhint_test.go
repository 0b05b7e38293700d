//go:build linux

package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testproc"
)

// TestReadyHint: a CMD that stays silent past ReadyHint draws one log line
// naming what the supervisor waits for (READY=1, its pid, the
// NOTIFY_SOCKET) and the way out (--ready exec), long before ReadyTimeout.
func TestReadyHint(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	var logs testproc.Buffer
	s, args, _, _ := newServing(t, Config{
		ReadyHint: -1, // none for the first CMD, however slow this machine is
		Logger:    slog.New(slog.NewTextHandler(&logs, nil)),
	})
	s.cfg.ReadyHint = 100 * time.Millisecond
	s.cfg.Args = append(args[:len(args):len(args)], "noready")
	s.cfg.ReadyTimeout = time.Minute // the hint comes long before
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	upgraded := make(chan error, 1)
	go func() {
		_, err := s.Upgrade(ctx)
		upgraded <- err
	}()
	waitFor(t, "the hint", func() bool { return strings.Contains(logs.String(), `msg="waiting for READY=1"`) })
	cancel() // the start fails: its context is done
	err := <-upgraded
	var se *StartError
	if !errors.As(err, &se) {
		t.Fatalf("Upgrade = %v, want a *StartError", err)
	}
	var hint string
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, `msg="waiting for READY=1"`) {
			if hint != "" {
				t.Errorf("the hint was logged twice:\n%s", logs.String())
			}
			hint = line
		}
	}
	for _, want := range []string{
		fmt.Sprintf("pid=%d ", se.PID),
		"notify_socket=" + s.notify.Socket(),
		"waited=100ms",
		"ready_timeout=1m0s",
		"--ready exec",
	} {
		if !strings.Contains(hint, want) {
			t.Errorf("hint lacks %q: %q", want, hint)
		}
	}
}

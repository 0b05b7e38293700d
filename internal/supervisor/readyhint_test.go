package supervisor

import (
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
// NOTIFY_SOCKET) and the way out (--ready exec), long before ReadyTimeout;
// a CMD that is ready in time draws none.
func TestReadyHint(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	var logs testproc.Buffer
	s, args, _, _ := newServing(t, Config{
		ReadyHint: 100 * time.Millisecond,
		Logger:    slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if strings.Contains(logs.String(), "waiting for READY=1") {
		t.Fatalf("a CMD ready at once drew the hint:\n%s", logs.String())
	}
	s.cfg.Args = append(args[:len(args):len(args)], "noready")
	s.cfg.ReadyTimeout = 2 * time.Second
	_, err := s.Upgrade(t.Context())
	if !errors.Is(err, ErrNotReady) {
		t.Fatalf("Upgrade = %v, want ErrNotReady", err)
	}
	var se *StartError
	if !errors.As(err, &se) {
		t.Fatalf("Upgrade error %T is not a *StartError", err)
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
		"ready_timeout=2s",
		"--ready exec",
	} {
		if !strings.Contains(hint, want) {
			t.Errorf("hint lacks %q: %q", want, hint)
		}
	}
}

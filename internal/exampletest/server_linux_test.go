package exampletest

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/batonhq/baton/internal/testproc"
)

func TestMain(m *testing.M) {
	// Args: what run returns after SIGTERM ("" for nil).
	Register("serve", func(pidfile string, args []string) error {
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM)
		if fds := os.Getenv("LISTEN_FDS"); fds != "1" {
			return fmt.Errorf("LISTEN_FDS=%q, want 1", fds)
		}
		if err := os.WriteFile(pidfile, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			return err
		}
		<-term
		if len(args) > 0 && args[0] != "" {
			return errors.New(args[0])
		}
		return nil
	})
	Main(m)
}

// recorder keeps a test's errors instead of failing it.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recorder) Error(args ...any) { r.errs = append(r.errs, fmt.Sprint(args...)) }
func (r *recorder) Failed() bool      { return len(r.errs) > 0 }

// TestStop: Start hands the socket over and sees the pid file; Stop ends
// the generation, and fails the test when its run failed.
func TestStop(t *testing.T) {
	testproc.CheckFDs(t)
	for _, tc := range []struct {
		name, network, runErr string
		want                  string // in the one error Stop reports; "" for none
	}{
		{name: "tcp", network: "", runErr: ""},
		{name: "udp", network: "udp", runErr: ""},
		{name: "failed", network: "tcp", runErr: "drain cut", want: ": drain cut"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{TB: t}
			s := Start(r, Config{Helper: "serve", Socket: "x", Network: tc.network, Args: []string{tc.runErr}})
			pid := s.PID()
			if pid != s.First.Pid || len(r.errs) != 0 {
				t.Fatalf("PID() = %d, started %d; errors %q", pid, s.First.Pid, r.errs)
			}
			s.Stop()
			if testproc.Alive(pid) {
				t.Errorf("pid %d runs after Stop", pid)
			}
			switch {
			case tc.want == "" && len(r.errs) != 0:
				t.Errorf("Stop reported %q, want nothing", r.errs)
			case tc.want != "" && (len(r.errs) != 1 || !strings.Contains(r.errs[0], fmt.Sprintf("pid %d%s", pid, tc.want))):
				t.Errorf("Stop reported %q, want one error naming pid %d%s", r.errs, pid, tc.want)
			}
		})
	}
}

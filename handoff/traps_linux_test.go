package handoff

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/control"
	"github.com/batonhq/baton/internal/testproc"
	"golang.org/x/sys/unix"
)

func init() {
	// In a new session whose controlling terminal is stdin (a pty), as a
	// shell starts a job in the foreground: New says how to stop it.
	testproc.Register("terminal", func() {
		up, err := New(Config{NoSignals: true, NoControl: true, Logger: slog.New(slog.NewTextHandler(os.Stdout, nil))})
		if err != nil {
			fmt.Println(err)
			return
		}
		_ = up.Close()
	})
}

// logBuf is a log a test reads.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// await waits until the log says s; it fails the test after a minute.
func (l *logBuf) await(t *testing.T, s string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !strings.Contains(l.String(), s); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the log never said %q:\n%s", s, l.String())
		}
	}
}

func captureLog() (*slog.Logger, *logBuf) {
	b := &logBuf{}
	return slog.New(slog.NewTextHandler(b, nil)), b
}

// setStartExe makes New take exe as this program's executable.
func setStartExe(t *testing.T, exe string) {
	old := startExe
	startExe = exe
	t.Cleanup(func() { startExe = old })
}

func TestGoRunBuild(t *testing.T) {
	for _, tt := range []struct {
		exe  string
		want bool
	}{
		{"/tmp/go-build2345/b001/exe/app", true},
		{"/home/u/.cache/tmp/go-build99/b001/exe/server", true},
		{"/tmp/go-build2345/b001/handoff.test", false},
		{"/usr/local/bin/app", false},
		{"/srv/exe/app", false},
	} {
		if got := goRunBuild(tt.exe); got != tt.want {
			t.Errorf("goRunBuild(%q) = %v, want %v", tt.exe, got, tt.want)
		}
	}
}

// TestTrapZeroConfigLogs: a zero Config logs through slog.Default(), here
// the warning that the executable is a `go run` build. Before, a nil
// Logger was silence.
func TestTrapZeroConfigLogs(t *testing.T) {
	checkLeaks(t)
	log, buf := captureLog()
	old := slog.Default()
	slog.SetDefault(log)
	defer slog.SetDefault(old)
	setStartExe(t, "/tmp/go-build2345/b001/exe/app")
	up, err := New(Config{NoSignals: true, NoControl: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "go build") {
		t.Errorf("New with a zero Config (Logger nil) and a `go run` build logged %q to slog.Default(), want the go run warning", buf.String())
	}
}

// TestTrapListenNotServed: a listener from Listen that the program serves
// itself (srv.Serve(ln), not up.Serve) is cut at the upgrade; Ready says
// so. One given to Serve is not named.
func TestTrapListenNotServed(t *testing.T) {
	checkLeaks(t)
	for _, viaServe := range []bool{false, true} {
		log, buf := captureLog()
		up, err := New(Config{NoSignals: true, NoControl: true, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := up.Listen("http", "tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.NotFoundHandler()}
		done := make(chan struct{})
		if viaServe {
			up.Serve(HTTP(srv, ln))
			close(done)
		} else {
			go func() { defer close(done); _ = srv.Serve(ln) }()
		}
		if err := up.Ready(); err != nil {
			t.Fatal(err)
		}
		up.Stop()
		_ = up.Wait()
		_ = srv.Close()
		<-done
		_ = up.Close()
		warned := strings.Contains(buf.String(), "not served by a server given to Serve") && strings.Contains(buf.String(), "name=http")
		if warned == viaServe {
			t.Errorf("given to Serve: %v; log %q", viaServe, buf.String())
		}
	}
}

// TestTrapServeWithoutReady: servers given to Serve wait for Ready; a
// program that never calls it is told after readyHint.
func TestTrapServeWithoutReady(t *testing.T) {
	checkLeaks(t)
	old := readyHint
	readyHint = 10 * time.Millisecond
	defer func() { readyHint = old }()
	log, buf := captureLog()
	up, err := New(Config{NoSignals: true, NoControl: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := up.Listen("http", "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up.Serve(HTTP(&http.Server{Handler: http.NotFoundHandler()}, ln))
	buf.await(t, "not started until Ready is called")
	up.Stop()
	_ = up.Wait()
	_ = up.Close()
}

// TestTrapReloadFailureLogged: an upgrade asked for through the control
// socket (`baton reload`) that fails is in the server's log, not only in
// the asker's answer. Before, only a SIGHUP's failure was logged.
func TestTrapReloadFailureLogged(t *testing.T) {
	checkLeaks(t)
	setStartExe(t, "/bin/false") // the new version exits at start
	log, buf := captureLog()
	up, err := New(Config{NoSignals: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := up.Listen("http", "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up.Serve(HTTP(&http.Server{Handler: http.NotFoundHandler()}, ln))
	if err := up.Ready(); err != nil {
		t.Fatal(err)
	}
	_, err = control.Reload(t.Context(), os.Getpid())
	if !errors.Is(err, control.ErrFailed) || !strings.Contains(err.Error(), "exit status 1") {
		t.Errorf("reload to /bin/false = %v, want the failure of a successor that exits 1", err)
	}
	up.Stop()
	_ = up.Wait()
	_ = up.Close()
	if s := buf.String(); !strings.Contains(s, "level=ERROR") || !strings.Contains(s, "upgrade asked by baton reload") {
		t.Errorf("the server's log after a failed baton reload: %q", s)
	}
}

// TestTrapTerminal: started in a terminal's foreground, New says that
// Ctrl-C stops working after the first upgrade, and how to stop it.
func TestTrapTerminal(t *testing.T) {
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	testproc.Require(t, err == nil, fmt.Sprintf("needs /dev/ptmx: %v", err))
	defer ptmx.Close()
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	cmd := testproc.Command(t, "terminal")
	cmd.Stdin = tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	if !strings.Contains(string(out), "Ctrl-C no longer stops the server") {
		t.Errorf("New in a terminal's foreground logged %q", out)
	}
	// Not in a terminal (stdin /dev/null): nothing.
	out, err = testproc.Command(t, "terminal").Output()
	if err != nil || strings.Contains(string(out), "terminal") {
		t.Errorf("New without a terminal logged %q (%v)", out, err)
	}
}

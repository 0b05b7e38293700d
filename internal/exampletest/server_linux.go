package exampletest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"

	"github.com/batonhq/baton/internal/spawn"
	"github.com/batonhq/baton/internal/testproc"
)

// logLines is how many of the generations' last log lines a failed test
// shows (Config.Log).
const logLines = 60

// Register registers the helper name, which runs an example's run
// function: run gets the pid file and the arguments that follow it
// (Config.Args). When run fails, the helper appends "pid P: error" to the
// Server's ErrFile and exits 1.
func Register(name string, run func(pidfile string, args []string) error) {
	testproc.Register(name, func() {
		args := testproc.Args()
		if len(args) < 2 {
			fmt.Fprintf(os.Stderr, "exampletest: helper %s wants the pid file and the error file\n", name)
			os.Exit(2)
		}
		if err := run(args[0], args[2:]); err != nil {
			fmt.Fprintf(os.Stderr, "%s (pid %d): %v\n", name, os.Getpid(), err)
			if f, ferr := os.OpenFile(args[1], os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); ferr == nil {
				fmt.Fprintf(f, "pid %d: %v\n", os.Getpid(), err)
				_ = f.Close()
			}
			os.Exit(1)
		}
	})
}

// Main makes the test process the subreaper of its descendants (not in a
// helper) and hands over to testproc.Main. It never returns.
func Main(m *testing.M) {
	if _, helper := os.LookupEnv(testproc.EnvHelper); !helper {
		if err := testproc.Subreaper(); err != nil {
			panic(err)
		}
	}
	testproc.Main(m)
}

// Config describes an example's first generation.
type Config struct {
	// Helper is the name given to Register.
	Helper string
	// Socket is the socket's name (LISTEN_FDNAMES), the one the example
	// asks handoff for.
	Socket string
	// Network is "tcp" (the zero value: a listener) or "udp".
	Network string
	// Args follow the pid file in the run function's arguments.
	Args []string
	// Exe is the file to start, a copy of the test binary that the test
	// may replace (an upgrade starts the file at this path); empty means
	// the test binary itself.
	Exe string
	// Log sends the generations' stderr to LogFile instead of the test's
	// stderr; its last lines are logged when the test fails.
	Log bool
}

// Server is an example's chain of generations. Its methods are safe for
// concurrent use.
type Server struct {
	Addr    string // the socket's address
	PIDFile string // written by the example: the serving generation
	ErrFile string // the generations whose run failed (Register)
	LogFile string // the generations' stderr, with Config.Log
	// First is the first generation, the test's child. A test may Wait
	// for it; the cleanup does otherwise.
	First *os.Process

	t       testing.TB
	mu      sync.Mutex
	pids    []int // every generation, in order
	stopped bool
}

// Start starts the first generation socket-activated and waits until the
// pid file names it. The test's cleanup stops the serving generation
// unless the test did (Stop), waits until every generation is gone and
// reaps them; after a failed test it kills those still running first.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	dir := t.TempDir()
	s := &Server{t: t, PIDFile: filepath.Join(dir, "pid"), ErrFile: filepath.Join(dir, "errors")}
	sock, addr := socketFile(t, cfg.Network)
	// Closed once the example has its copy: when no generation holds the
	// socket any more, a connection is refused, not left in a backlog.
	defer sock.Close()
	s.Addr = addr
	stderr := os.Stderr
	if cfg.Log {
		s.LogFile = filepath.Join(dir, "log")
		f, err := os.Create(s.LogFile)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close() // the generations have their copies
		stderr = f
	}
	cmd := testproc.Command(t, cfg.Helper, append([]string{s.PIDFile, s.ErrFile}, cfg.Args...)...)
	if cfg.Exe != "" {
		cmd.Path, cmd.Args[0] = cfg.Exe, cfg.Exe
	}
	p, err := spawn.Start(&spawn.Config{
		Path: cmd.Path, Args: cmd.Args, Env: cmd.Env, Stderr: stderr,
		Files: []*os.File{sock}, Names: []string{cfg.Socket}, Mode: spawn.SelfFix,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.First, s.pids = p, []int{p.Pid}
	t.Cleanup(s.cleanup)
	if pid := testproc.WaitPIDFile(t, s.PIDFile, 0); pid != p.Pid {
		s.pids = append(s.pids, pid)
		t.Errorf("pid file names %d, want %d (the process started)", pid, p.Pid)
	}
	return s
}

// socketFile binds a socket on a free loopback port as a manager would
// and returns its file and address.
func socketFile(t testing.TB, network string) (*os.File, string) {
	t.Helper()
	if network == "" || network == "tcp" {
		return testproc.ListenerFile(t)
	}
	pc, err := net.ListenPacket(network, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		t.Fatalf("exampletest: network %q: want tcp or udp", network)
	}
	f, err := uc.File()
	if err != nil {
		t.Fatal(err)
	}
	return f, pc.LocalAddr().String()
}

// PID returns the serving generation: the last the pid file named.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pids[len(s.pids)-1]
}

// PIDs returns every generation so far, first to last.
func (s *Server) PIDs() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.pids)
}

// Next waits until the pid file names a generation other than PID and
// returns it, now PID.
func (s *Server) Next() int {
	s.t.Helper()
	pid := testproc.WaitPIDFile(s.t, s.PIDFile, s.PID())
	s.mu.Lock()
	s.pids = append(s.pids, pid)
	s.mu.Unlock()
	return pid
}

// Upgrade sends SIGHUP to the serving generation and returns its
// successor once the pid file names it (Next). The generation that
// handed over may still be draining.
func (s *Server) Upgrade() int {
	s.t.Helper()
	if err := syscall.Kill(s.PID(), syscall.SIGHUP); err != nil {
		s.t.Fatalf("upgrade of %d: %v", s.PID(), err)
	}
	return s.Next()
}

// Stop sends SIGTERM to the serving generation when it runs, waits until
// every generation is gone and reaps them, and fails the test for each
// generation whose run failed. It may be called again.
func (s *Server) Stop() {
	s.t.Helper()
	s.mu.Lock()
	again := s.stopped
	s.stopped = true
	s.mu.Unlock()
	pids := s.PIDs()
	if cur := pids[len(pids)-1]; !again && testproc.Alive(cur) {
		if err := syscall.Kill(cur, syscall.SIGTERM); err != nil {
			s.t.Errorf("stop of %d: %v", cur, err)
		}
	}
	for _, pid := range pids {
		testproc.WaitGone(s.t, pid)
	}
	s.reap(pids)
	if again {
		return
	}
	if b, err := os.ReadFile(s.ErrFile); err == nil {
		s.t.Errorf("generations whose run failed:\n%s", b)
	} else if !errors.Is(err, os.ErrNotExist) {
		s.t.Error(err)
	}
}

// reap collects the first generation (the test's child) and the others,
// reparented to the test (Main).
func (s *Server) reap(pids []int) {
	if !testproc.Alive(s.First.Pid) {
		_, _ = s.First.Wait() // an error when the test waited already
	}
	testproc.Reap(pids...)
}

func (s *Server) cleanup() {
	if s.t.Failed() { // a Fatal among them: leave no generation behind
		s.kill()
	}
	s.Stop()
	if s.t.Failed() {
		s.kill() // those that did not stop in time
		s.Stop() // again: waits for them and reaps them
		s.logTail()
	}
}

// kill sends SIGKILL to every generation still running.
func (s *Server) kill() {
	for _, pid := range s.PIDs() {
		if testproc.Alive(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// logTail logs the last lines of LogFile.
func (s *Server) logTail() {
	if s.LogFile == "" {
		return
	}
	b, err := os.ReadFile(s.LogFile)
	if err != nil {
		s.t.Log(err)
		return
	}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	s.t.Logf("last lines of the generations' log:\n%s", bytes.Join(lines[max(0, len(lines)-logLines):], []byte("\n")))
}

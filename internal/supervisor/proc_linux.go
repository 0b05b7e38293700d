package supervisor

import (
	"errors"
	"fmt"
	"math"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// envExec marks a start of the supervisor's own executable as the
// trampoline: its value is the path of CMD.
const envExec = "BATON_SUPERVISOR_EXEC"

// init runs the trampoline. Go cannot run code in the child between fork
// and exec, and LISTEN_PID must be the pid of the process that receives the
// sockets, which is only known in that process. So the supervisor starts
// its own executable with the sockets already at fd 3.. (os.StartProcess
// moves them there and clears CLOEXEC), and this init, before main and
// before anything opens a file, sets LISTEN_PID to its own pid and execs
// CMD in the same process: same pid, same fds, same process group.
func init() {
	path, ok := os.LookupEnv(envExec)
	if !ok {
		return
	}
	env := make([]string, 0, len(os.Environ())+1)
	for _, kv := range os.Environ() {
		if len(kv) >= len(envExec)+1 && kv[:len(envExec)+1] == envExec+"=" {
			continue
		}
		if len(kv) >= 11 && kv[:11] == "LISTEN_PID=" {
			continue
		}
		env = append(env, kv)
	}
	n := 0
	if v, ok := os.LookupEnv("LISTEN_FDS"); ok {
		n, _ = strconv.Atoi(v)
		env = append(env, fmt.Sprintf("LISTEN_PID=%d", os.Getpid()))
	}
	// Only 0-2 and the sockets may reach CMD: an fd this process inherited
	// without CLOEXEC (from whoever started the supervisor) is closed at exec.
	_ = unix.CloseRange(uint(3+n), math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC)
	err := unix.Exec(path, os.Args, env)
	fmt.Fprintf(os.Stderr, "baton: exec %s: %v\n", path, err)
	if errors.Is(err, unix.ENOENT) {
		os.Exit(127)
	}
	os.Exit(126)
}

// startProcess starts the trampoline that becomes CMD, in its own process
// group so that signals reach it only through the supervisor.
//
// It takes raw fds: os.StartProcess would call (*os.File).Fd, which puts a
// socket's open file description, shared with the CMDs serving it, into
// blocking mode, and a Go CMD's Accept would then block in the kernel where
// its Close cannot interrupt it.
func startProcess(path string, args, env []string, fds []uintptr) (*os.Process, error) {
	// path is in env (envExec) for the trampoline.
	pid, err := syscall.ForkExec("/proc/self/exe", args, &syscall.ProcAttr{
		Env:   env,
		Files: fds,
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		return nil, fmt.Errorf("start trampoline for %s: %w", path, err)
	}
	p, err := os.FindProcess(pid) // a pidfd: signals never reach a reused pid
	if err != nil {
		_ = unix.Kill(pid, unix.SIGKILL)
		return nil, fmt.Errorf("pid %d: %w", pid, err)
	}
	return p, nil
}

// rawFDs returns the descriptors of files without changing their mode.
func rawFDs(files []*os.File) ([]uintptr, error) {
	fds := make([]uintptr, len(files))
	for i, f := range files {
		rc, err := f.SyscallConn()
		if err != nil {
			return nil, fmt.Errorf("fd of %s: %w", f.Name(), err)
		}
		if err := rc.Control(func(fd uintptr) { fds[i] = fd }); err != nil {
			return nil, fmt.Errorf("fd of %s: %w", f.Name(), err)
		}
	}
	return fds, nil
}

// setBlocking puts a socket in blocking mode, as systemd hands them over;
// a Go CMD makes its copy non-blocking itself. It is done once, before the
// first CMD, never while one serves.
func setBlocking(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetNonblock(int(fd), false) }); err != nil {
		return err
	}
	return serr
}

func killGroup(pid int) error { return unix.Kill(-pid, unix.SIGKILL) }

func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / 1000
}

func statusOf(ws unix.WaitStatus) ExitStatus {
	if ws.Signaled() {
		return ExitStatus{Code: -1, Signal: ws.Signal()}
	}
	return ExitStatus{Code: ws.ExitStatus()}
}

// waitExit collects g's exit status, by its own wait unless the reaper does.
func (s *Supervisor) waitExit(g *generation) {
	if s.cfg.ReapOrphans {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		var st ExitStatus
		ps, err := g.proc.Wait()
		if err != nil {
			st = ExitStatus{Code: -1}
		} else if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
			st = statusOf(unix.WaitStatus(ws))
		}
		s.reaped(g, st)
	}()
}

func (s *Supervisor) reaped(g *generation, st ExitStatus) {
	s.mu.Lock()
	delete(s.byPID, g.pid)
	s.mu.Unlock()
	g.exited(st)
}

type reaper struct {
	sig  chan os.Signal
	stop chan struct{}
	done chan struct{}
}

// startReaper reaps every child of the process on SIGCHLD.
func (s *Supervisor) startReaper() error {
	r := &reaper{sig: make(chan os.Signal, 1), stop: make(chan struct{}), done: make(chan struct{})}
	signal.Notify(r.sig, unix.SIGCHLD)
	s.reaper = r
	go func() {
		defer close(r.done)
		for {
			s.reapAll()
			select {
			case <-r.sig:
			case <-r.stop:
				s.reapAll()
				return
			}
		}
	}()
	return nil
}

func (s *Supervisor) stopReaper() {
	r := s.reaper
	if r == nil {
		return
	}
	signal.Stop(r.sig)
	close(r.stop)
	<-r.done
	s.reaper = nil
}

func (s *Supervisor) reapAll() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		// start holds mu from fork to registration, so a CMD is always
		// found here.
		s.mu.Lock()
		g := s.byPID[pid]
		if g == nil {
			s.stats.OrphansReaped++
		}
		s.mu.Unlock()
		if g == nil {
			s.log.Debug("reaped orphan", "pid", pid, "status", statusOf(ws).String())
			continue
		}
		_ = g.proc.Release()
		s.reaped(g, statusOf(ws))
	}
}

func fileID(fi os.FileInfo) (ino, dev uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino, st.Dev
	}
	return 0, 0
}

package supervisor

import (
	"errors"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/internal/spawn"
)

// startProcess starts CMD through internal/spawn's trampoline, which sets
// LISTEN_PID to CMD's own pid at exec, in a process group of its own.
func startProcess(path string, args, env []string, stdin, stdout, stderr *os.File, socks []Socket) (*os.Process, error) {
	c := &spawn.Config{
		Path: path, Args: args, Env: env, Stdin: stdin, Stdout: stdout, Stderr: stderr,
		Mode: spawn.Trampoline, NewProcessGroup: true,
	}
	if len(socks) > 0 {
		c.Names = make([]string, 0, len(socks))
	}
	for _, sk := range socks {
		c.Files = append(c.Files, sk.File)
		c.Names = append(c.Names, sk.Name)
	}
	return spawn.Start(c)
}

// killGroup sends SIGKILL to the process group pgid.
func killGroup(pgid int) error { return unix.Kill(-pgid, unix.SIGKILL) }

// setBlocking puts a socket in blocking mode, as systemd hands them over;
// a Go CMD makes its copy non-blocking itself. It is done once, before the
// first CMD, never while one serves: the mode belongs to the open file
// description that every CMD shares.
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
func (s *Supervisor) waitExit(g *child) {
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

func (s *Supervisor) reaped(g *child, st ExitStatus) {
	s.mu.Lock()
	delete(s.byPID, g.pid)
	_ = g.to(stateExited)
	g.exited(st)
	s.mu.Unlock()
	select {
	case s.exits <- struct{}{}:
	default:
	}
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

// exitPending reports whether the child pid has exited: it is a zombie
// its wait has not reaped yet (waitid with WNOWAIT leaves it so), or it
// is reaped already (ECHILD; its done is about to close).
func exitPending(pid int) bool {
	var info unix.Siginfo
	err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	if err != nil {
		return errors.Is(err, unix.ECHILD)
	}
	return info.Signo == int32(unix.SIGCHLD)
}

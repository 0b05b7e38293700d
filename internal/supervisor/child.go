package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/batonhq/baton/internal/spawn"
)

// child is one started CMD.
type child struct {
	n       int // generation: the n-th CMD started
	slot    int // its place in the pool, 0 with one worker
	version int // the successful upgrades before it started (its own included), 0 for the first ones
	pid     int
	path    string
	proc    *os.Process
	started time.Time

	state   childState // guarded by Supervisor.mu
	readyAt time.Time  // guarded by Supervisor.mu

	readyOnce sync.Once
	ready     chan struct{}

	done     chan struct{} // closed after status is set
	status   ExitStatus
	exitedAt time.Time

	lastStatus string // the CMD's last STATUS=, guarded by Supervisor.mu
}

// signal sends sig unless the process is gone (its pidfd says so, or it was
// reaped and released).
func (c *child) signal(sig os.Signal) error {
	err := c.proc.Signal(sig)
	if err == nil || errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	select {
	case <-c.done:
		return nil
	default:
		return err
	}
}

func (c *child) markReady() { c.readyOnce.Do(func() { close(c.ready) }) }

func (c *child) exited(st ExitStatus) {
	c.status, c.exitedAt = st, time.Now()
	close(c.done)
}

// start starts a CMD for slot and waits until it is ready, has failed, or
// ctx is done. The ready CMD is left starting: the caller puts it in the
// serving set.
func (s *Supervisor) start(ctx context.Context, slot, version int) (*child, error) {
	path, err := exec.LookPath(s.cfg.Args[0])
	if err != nil {
		return nil, &StartError{Path: s.cfg.Args[0], Err: fmt.Errorf("%w: %w", ErrBinaryMissing, err)}
	}
	env := s.childEnv()

	s.mu.Lock()
	proc, err := startProcess(path, s.cfg.Args, env, nil, s.cfg.Stdout, s.cfg.Stderr, s.cfg.Sockets)
	if err != nil {
		s.mu.Unlock()
		return nil, &StartError{Path: path, Err: err}
	}
	s.stats.Generations++
	c := &child{
		n: s.stats.Generations, slot: slot, version: version, pid: proc.Pid, path: path, proc: proc,
		started: time.Now(), ready: make(chan struct{}), done: make(chan struct{}),
	}
	s.byPID[c.pid] = c
	s.stats.Peak = max(s.stats.Peak, len(s.byPID))
	s.mu.Unlock()
	s.waitExit(c)
	s.log.Info("started", "pid", c.pid, "generation", c.n, "path", path)

	timer := time.NewTimer(s.cfg.ReadyTimeout)
	defer timer.Stop()
	// A program that never sends READY=1 would otherwise wait out the
	// whole ReadyTimeout in silence.
	var hint <-chan time.Time
	if s.cfg.Ready == ReadyNotify && s.cfg.ReadyHint > 0 && s.cfg.ReadyHint < s.cfg.ReadyTimeout {
		ht := time.NewTimer(s.cfg.ReadyHint)
		defer ht.Stop()
		hint = ht.C
	}
	var fail error
	for fail == nil {
		select {
		case <-hint:
			hint = nil
			s.log.Warn("waiting for READY=1", "pid", c.pid, "generation", c.n,
				"notify_socket", s.notify.Socket(), "waited", s.cfg.ReadyHint, "ready_timeout", s.cfg.ReadyTimeout,
				"hint", "CMD must send READY=1 to NOTIFY_SOCKET from its own pid (sd_notify); for a program that never does, use --ready exec")
		case <-c.ready:
			return s.readied(c), nil
		case <-c.done:
			st := c.status
			return nil, &StartError{Path: path, PID: c.pid, Status: &st, Err: ErrExited}
		case <-timer.C:
			if s.cfg.Ready == ReadyExec {
				c.markReady()
				return s.readied(c), nil
			}
			fail = &StartError{Path: path, PID: c.pid, Timeout: s.cfg.ReadyTimeout, Err: ErrNotReady}
		case <-ctx.Done():
			fail = &StartError{Path: path, PID: c.pid, Err: ctx.Err()}
		case <-s.stopping:
			fail = &StartError{Path: path, PID: c.pid, Err: context.Canceled}
		}
	}
	s.terminate(c)
	return nil, fail
}

func (s *Supervisor) readied(c *child) *child {
	s.mu.Lock()
	c.readyAt = time.Now()
	s.mu.Unlock()
	return c
}

// terminate sends SIGTERM to a CMD that failed to start (or that a failed
// roll-out or a stop gives up) and SIGKILL after Drain (it may have
// accepted connections before failing), and waits.
func (s *Supervisor) terminate(c *child) {
	s.mu.Lock()
	_ = c.to(stateDraining)
	s.mu.Unlock()
	_ = c.signal(syscall.SIGTERM)
	t := time.NewTimer(s.cfg.Drain)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		s.kill(c)
		<-c.done
	}
}

// childEnv is CMD's environment: the configured one with the supervisor's
// NOTIFY_SOCKET and without WATCHDOG_PID (the supervisor's, not CMD's);
// internal/spawn adds the LISTEN_ variables.
func (s *Supervisor) childEnv() []string {
	env := spawn.EnvWithout(s.cfg.Env, "NOTIFY_SOCKET", "WATCHDOG_PID")
	return append(env, "NOTIFY_SOCKET="+s.notify.Socket())
}

// retire sends SIGTERM to a replaced CMD and SIGKILL after Drain. A CMD
// that has exited already is left alone.
func (s *Supervisor) retire(c *child) {
	s.mu.Lock()
	err := c.to(stateDraining)
	if err == nil {
		s.retired = append(s.retired, c)
	}
	s.mu.Unlock()
	if err != nil {
		return
	}
	term := time.Now()
	if err := c.signal(syscall.SIGTERM); err != nil {
		s.log.Warn("SIGTERM", "pid", c.pid, "err", err)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTimer(s.cfg.Drain)
		defer t.Stop()
		select {
		case <-c.done:
		case <-t.C:
			s.log.Warn("drain deadline passed, killing", "pid", c.pid)
			s.kill(c)
			<-c.done
		}
		took := time.Since(term)
		s.mu.Lock()
		s.stats.ExitAfterTerm = appendBounded(s.stats.ExitAfterTerm, took, ExitHistory)
		s.mu.Unlock()
		s.log.Info("old process exited", "pid", c.pid, "status", c.status.String(), "after", took)
	}()
}

// appendBounded appends v to h and drops the oldest entries beyond limit,
// reusing h's array.
func appendBounded[T any](h []T, v T, limit int) []T {
	if len(h) < limit {
		return append(h, v)
	}
	n := copy(h, h[len(h)-limit+1:])
	return append(h[:n], v)
}

// kill sends SIGKILL to a CMD's process group, which holds CMD and what it
// started (unless those made groups of their own), and to CMD itself
// through its pidfd (never a reused pid), in case CMD left its group.
//
// The group's id is CMD's pid: it is signalled only while CMD is not known
// to be reaped, when that id cannot belong to anyone else. (Between the
// wait that reaps CMD and its removal from byPID, the id is still in use
// as long as a member of the group lives; otherwise kill(2) finds no group,
// short of a pid reused in those microseconds by a new group leader.)
func (s *Supervisor) kill(c *child) {
	var err error
	s.mu.Lock()
	if s.byPID[c.pid] == c {
		err = killGroup(c.pid)
	}
	s.mu.Unlock()
	if err != nil && !errors.Is(err, syscall.ESRCH) {
		s.log.Warn("SIGKILL to process group", "pgid", c.pid, "err", err)
	}
	_ = c.proc.Kill()
}

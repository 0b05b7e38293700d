package supervisor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/batonhq/baton/notify"
)

// generation is one started CMD.
type generation struct {
	n       int
	pid     int
	path    string
	proc    *os.Process
	started time.Time

	readyOnce sync.Once
	ready     chan struct{}

	done   chan struct{} // closed after status is set
	status ExitStatus

	lastStatus string // the CMD's last STATUS=, guarded by Supervisor.mu
}

// signal sends sig unless the process is gone (its pidfd says so, or it was
// reaped and released).
func (g *generation) signal(sig os.Signal) error {
	err := g.proc.Signal(sig)
	if err == nil || errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	select {
	case <-g.done:
		return nil
	default:
		return err
	}
}

func (g *generation) markReady() { g.readyOnce.Do(func() { close(g.ready) }) }

func (g *generation) exited(st ExitStatus) {
	g.status = st
	close(g.done)
}

// open allocates what Run needs: the notify socket and the reaper.
func (s *Supervisor) open() error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("supervisor: Run called twice")
	}
	s.running = true
	s.stopping = make(chan struct{})
	s.ended = make(chan struct{})
	s.cut = nil
	s.retired = nil
	s.mu.Unlock()

	for _, sk := range s.cfg.Sockets {
		if err := setBlocking(sk.File); err != nil {
			return fmt.Errorf("socket %s: %w", sk.Name, err)
		}
	}
	addr := s.cfg.NotifyAddress
	if addr == "" {
		addr = defaultNotifyAddress()
	}
	nc, err := notify.Listen(addr)
	if err != nil {
		return err
	}
	s.notify = nc
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.readNotify()
	}()
	if s.cfg.ReapOrphans {
		if err := s.startReaper(); err != nil {
			s.close()
			return err
		}
	}
	return nil
}

// close undoes open after every CMD has exited.
func (s *Supervisor) close() {
	s.mu.Lock()
	select {
	case <-s.stopping:
	default:
		close(s.stopping)
	}
	close(s.ended) // no stop delay starts from now on
	s.mu.Unlock()
	_ = s.notify.Close()
	s.stopReaper()
	s.wg.Wait()
	s.mu.Lock()
	s.running = false
	s.current = nil
	s.mu.Unlock()
}

// start starts a CMD and waits until it is ready, has failed, or ctx is done.
func (s *Supervisor) start(ctx context.Context) (*generation, error) {
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
	g := &generation{
		n: s.stats.Generations, pid: proc.Pid, path: path, proc: proc, started: time.Now(),
		ready: make(chan struct{}), done: make(chan struct{}),
	}
	s.byPID[g.pid] = g
	s.mu.Unlock()
	s.waitExit(g)
	s.log.Info("started", "pid", g.pid, "generation", g.n, "path", path)

	timer := time.NewTimer(s.cfg.ReadyTimeout)
	defer timer.Stop()
	var fail error
	select {
	case <-g.ready:
		return g, nil
	case <-g.done:
		st := g.status
		return nil, &StartError{Path: path, PID: g.pid, Status: &st, Err: ErrExited}
	case <-timer.C:
		if s.cfg.Ready == ReadyExec {
			g.markReady()
			return g, nil
		}
		fail = &StartError{Path: path, PID: g.pid, Timeout: s.cfg.ReadyTimeout, Err: ErrNotReady}
	case <-ctx.Done():
		fail = &StartError{Path: path, PID: g.pid, Err: ctx.Err()}
	case <-s.stopping:
		fail = &StartError{Path: path, PID: g.pid, Err: context.Canceled}
	}
	s.terminate(g)
	return nil, fail
}

// terminate sends SIGTERM to a CMD that failed to start and SIGKILL after
// Drain (it may have accepted connections before failing), and waits.
func (s *Supervisor) terminate(g *generation) {
	_ = g.signal(syscall.SIGTERM)
	t := time.NewTimer(s.cfg.Drain)
	defer t.Stop()
	select {
	case <-g.done:
	case <-t.C:
		s.kill(g)
		<-g.done
	}
}

// childEnv is CMD's environment: the configured one with the supervisor's
// NOTIFY_SOCKET and without WATCHDOG_PID (the supervisor's, not CMD's);
// internal/spawn adds the LISTEN_ variables.
func (s *Supervisor) childEnv() []string {
	base := s.cfg.Env
	if base == nil {
		base = os.Environ()
	}
	env := make([]string, 0, len(base)+5)
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "NOTIFY_SOCKET", "WATCHDOG_PID":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "NOTIFY_SOCKET="+s.notify.Socket())
}

// retire sends SIGTERM to a replaced CMD and SIGKILL after Drain.
func (s *Supervisor) retire(g *generation) {
	s.mu.Lock()
	s.retired = append(s.retired, g)
	s.mu.Unlock()
	term := time.Now()
	if err := g.signal(syscall.SIGTERM); err != nil {
		s.log.Warn("SIGTERM", "pid", g.pid, "err", err)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTimer(s.cfg.Drain)
		defer t.Stop()
		select {
		case <-g.done:
		case <-t.C:
			s.log.Warn("drain deadline passed, killing", "pid", g.pid)
			s.kill(g)
			<-g.done
		}
		took := time.Since(term)
		s.mu.Lock()
		s.stats.ExitAfterTerm = appendBounded(s.stats.ExitAfterTerm, took, ExitHistory)
		s.mu.Unlock()
		s.log.Info("old process exited", "pid", g.pid, "status", g.status.String(), "after", took)
	}()
}

// appendBounded appends v to h and drops the oldest entries beyond limit,
// reusing h's array.
func appendBounded(h []time.Duration, v time.Duration, limit int) []time.Duration {
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
func (s *Supervisor) kill(g *generation) {
	var err error
	s.mu.Lock()
	if s.byPID[g.pid] == g {
		err = killGroup(g.pid)
	}
	s.mu.Unlock()
	if err != nil && !errors.Is(err, syscall.ESRCH) {
		s.log.Warn("SIGKILL to process group", "pgid", g.pid, "err", err)
	}
	_ = g.proc.Kill()
}

// stopAll sends SIGTERM to every CMD still running and waits for them,
// with SIGKILL after Drain.
func (s *Supervisor) stopAll(state string) {
	s.mu.Lock()
	select {
	case <-s.stopping:
	default:
		close(s.stopping)
	}
	all := make([]*generation, 0, len(s.byPID))
	for _, g := range s.byPID {
		all = append(all, g)
	}
	s.mu.Unlock()
	s.manager(state)
	for _, g := range all {
		_ = g.signal(syscall.SIGTERM)
	}
	t := time.NewTimer(s.cfg.Drain)
	defer t.Stop()
	for _, g := range all {
		select {
		case <-g.done:
		case <-t.C:
			for _, g := range all {
				s.kill(g)
			}
			<-g.done
		}
	}
	for _, g := range all {
		<-g.done
	}
}

// readNotify dispatches the CMDs' notify messages until the socket closes.
func (s *Supervisor) readNotify() {
	for {
		m, err := s.notify.Receive(context.Background())
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			s.log.Warn("notify message dropped", "err", err)
			continue
		}
		_ = m.Close() // no fd store here: passed fds are closed
		s.dispatch(m)
	}
}

func (s *Supervisor) dispatch(m *notify.Message) {
	s.mu.Lock()
	g := s.byPID[m.PID]
	// The first CMD speaks for the service from its start on; a new one
	// only once it has taken over.
	current := g != nil && (g == s.current || s.current == nil)
	if g == nil {
		s.stats.ForeignNotify++
	} else if v, ok := m.Lookup("STATUS"); ok {
		g.lastStatus = v
	}
	s.mu.Unlock()
	if g == nil {
		s.log.Debug("notify message from a process that is not a CMD", "pid", m.PID)
		return
	}
	if v, _ := m.Lookup("READY"); v == "1" {
		g.markReady()
	}
	// The serving CMD's own state goes to the manager; READY, RELOADING,
	// STOPPING and MAINPID are the supervisor's to say.
	var fwd []string
	for _, k := range []string{"STATUS", "WATCHDOG", "EXTEND_TIMEOUT_USEC", "ERRNO"} {
		if v, ok := m.Lookup(k); ok && (current || k == "EXTEND_TIMEOUT_USEC") {
			fwd = append(fwd, k+"="+v)
		}
	}
	if len(fwd) > 0 {
		s.manager(strings.Join(fwd, "\n"))
	}
}

// defaultNotifyAddress is a fresh abstract address: the random part keeps
// two supervisors that are both PID 1 of their own pid namespaces apart when
// they share a network namespace.
func defaultNotifyAddress() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "@baton/notify/" + strconv.Itoa(os.Getpid()) + "/" + hex.EncodeToString(b[:])
}

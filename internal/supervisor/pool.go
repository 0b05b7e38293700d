package supervisor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// slot is one place in the serving set: with Workers 1 there is one, and
// its CMD's exit ends Run; in a pool, a slot whose worker exited outside
// an upgrade is started again after a delay that doubles at each exit.
type slot struct {
	c        *child        // the worker serving there, nil while vacant
	restarts int           // workers started there after an exit
	delay    time.Duration // the last restart delay; 0: none yet, or reset
	due      time.Time     // when the next start is due; zero: none pending
	crashed  bool          // the pending start replaces a worker that exited
}

// reapWorkers vacates the slots whose worker exited and schedules a start
// there. It returns a note on each exit, for STATUS=. s.mu is held.
func (s *Supervisor) reapWorkers() (exits []string) {
	for i, sl := range s.slots {
		c := sl.c
		if c == nil || !isClosed(c.done) {
			continue
		}
		sl.c, sl.crashed = nil, true
		s.stats.WorkerExits++
		if !c.readyAt.IsZero() && c.exitedAt.Sub(c.readyAt) >= s.cfg.MaxRestartDelay {
			sl.delay = 0 // it served long enough: start over
		}
		sl.delay = s.nextDelay(sl.delay)
		sl.due = time.Now().Add(sl.delay)
		s.log.Warn("worker exited, restarting it", "worker", i+1, "pid", c.pid, "status", c.status.String(), "delay", sl.delay)
		exits = append(exits, fmt.Sprintf("worker %d (pid %d) exited (%s), restarting in %s", i+1, c.pid, c.status, sl.delay))
	}
	return exits
}

func (s *Supervisor) nextDelay(d time.Duration) time.Duration {
	if d <= 0 {
		return s.cfg.RestartDelay
	}
	return min(2*d, s.cfg.MaxRestartDelay)
}

// resize applies Scale outside operations: the last slots beyond the
// target go (their workers are returned, to be retired once s.mu is
// released), and missing slots come vacant with a start due at once. s.mu
// is held.
func (s *Supervisor) resize() (surplus []*child) {
	for len(s.slots) > s.target {
		sl := s.slots[len(s.slots)-1]
		s.slots = s.slots[:len(s.slots)-1]
		if sl.c != nil {
			surplus = append(surplus, sl.c)
		}
	}
	for len(s.slots) < s.target {
		s.slots = append(s.slots, &slot{due: time.Now()})
	}
	return surplus
}

// restartDue starts the most overdue vacant slot's worker when no
// operation runs, and returns when the next start is due (zero: none).
// s.mu is held.
func (s *Supervisor) restartDue(ctx context.Context) time.Time {
	next := -1
	for i, sl := range s.slots {
		if sl.c == nil && !sl.due.IsZero() && (next < 0 || sl.due.Before(s.slots[next].due)) {
			next = i
		}
	}
	if next < 0 {
		return time.Time{}
	}
	if due := s.slots[next].due; s.op != "" || time.Now().Before(due) {
		return due
	}
	op := fmt.Sprintf("start of worker %d", next+1)
	s.op = op
	s.wg.Add(1)
	go s.restartSlot(ctx, next, op)
	return time.Time{}
}

// restartSlot starts the worker of slot i (the operation op).
func (s *Supervisor) restartSlot(ctx context.Context, i int, op string) {
	defer s.wg.Done()
	defer s.release(op)
	s.mu.Lock()
	version := s.version
	s.mu.Unlock()
	c, err := s.start(ctx, i, version)
	s.mu.Lock()
	var sl *slot
	if i < len(s.slots) && s.slots[i].c == nil {
		sl = s.slots[i]
	}
	if err != nil {
		s.stats.FailedStarts++
		if sl != nil {
			sl.delay = s.nextDelay(sl.delay)
			sl.due = time.Now().Add(sl.delay)
		}
		s.mu.Unlock()
		s.log.Warn("worker start failed", "worker", i+1, "err", err)
		return
	}
	if sl == nil || s.isStoppingLocked() {
		s.mu.Unlock()
		s.terminate(c) // scaled down or stopped meanwhile
		return
	}
	sl.c, sl.due = c, time.Time{}
	if sl.crashed {
		sl.crashed = false
		sl.restarts++
		s.stats.Restarts++
	}
	_ = c.to(stateServing)
	s.mu.Unlock()
	s.log.Info("worker ready", "worker", i+1, "pid", c.pid, "generation", c.n)
	s.manager(s.statusLine())
}

// Scale sets the number of workers of a pool to n (at least 1) and returns
// at once: the supervisor applies it when no upgrade or start runs,
// starting the missing workers one after the other or retiring the last
// ones (SIGTERM, SIGKILL after Drain). An upgrade replaces the new size.
// It fails with one worker (Config.Workers 1 runs no pool) and outside Run.
func (s *Supervisor) Scale(n int) error {
	if n < 1 {
		return fmt.Errorf("supervisor: scale to %d workers: want 1 or more", n)
	}
	if !s.cfg.pool() {
		return errors.New("supervisor: scale: not a pool (Workers is 1)")
	}
	s.mu.Lock()
	if !s.running {
		s.mu.Unlock()
		return ErrNotRunning
	}
	old := s.target
	s.target = n
	s.mu.Unlock()
	if old != n {
		s.log.Info("scale", "workers", n, "was", old)
	}
	select {
	case s.poke <- struct{}{}:
	default:
	}
	return nil
}

// poolCheck is check for a pool that is not stopping. s.mu is held on entry
// and released on return.
//
// The serving set it changes goes to the manager as STATUS= (a restarted
// or added worker's, once it serves: restartSlot), so that the status never
// names a worker that is gone.
func (s *Supervisor) poolCheck(ctx context.Context) time.Time {
	exits := s.reapWorkers()
	surplus := s.resize()
	wake := s.restartDue(ctx)
	s.mu.Unlock()
	for _, c := range surplus {
		s.log.Info("scaled down: retiring worker", "pid", c.pid)
		s.retire(c)
	}
	if len(exits) > 0 || len(surplus) > 0 {
		s.manager(strings.Join(append([]string{s.statusLine()}, exits...), "; "))
	}
	return wake
}

package supervisor

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/batonhq/baton/internal/generation"
)

// Stats are counters for reports and tests.
type Stats struct {
	Generations    int // CMDs started
	Upgrades       int // successful upgrades (past their watch window)
	FailedUpgrades int // upgrades whose new CMD failed to start
	RolledBack     int // upgrades rolled back in their watch window
	OrphansReaped  int // children reaped that were not CMDs
	ForeignNotify  int // notify messages from unknown pids
	ForceClosed    int // draining CMDs killed for Config.MaxDraining
	Workers        int // the pool's wanted size (Config.Workers, Scale)
	Peak           int // the most CMDs running at once, draining ones included
	PeakLive       int // the most CMDs serving or starting at once (at most Workers+MaxSurge)
	WorkerExits    int // pool workers that exited outside an upgrade
	Restarts       int // pool workers started again after an exit
	FailedStarts   int // pool worker starts (restarts, Scale) that failed
	// ExitAfterTerm is, for the last replaced CMDs (at most
	// ExitHistory, in the order they exited), the time from SIGTERM to exit.
	ExitAfterTerm []time.Duration
}

// ExitHistory bounds Stats.ExitAfterTerm, so that a supervisor upgraded
// without end keeps a constant amount of memory.
const ExitHistory = 64

// HistoryLen bounds the upgrades History keeps.
const HistoryLen = 32

// Outcomes of an upgrade in Outcome.Outcome (handoff's names, and one of
// its own).
const (
	OutcomeOK         = generation.OK         // the new CMDs serve
	OutcomeFailed     = generation.Failed     // a new CMD failed to start; the old ones serve
	OutcomeRolledBack = generation.RolledBack // the new CMD exited in the watch window; the old one serves again
)

// Outcome is one upgrade, for `baton status`.
type Outcome struct {
	Version    int // the upgrade's number
	Generation int // the (first) new CMD's
	PID        int // the (first) new CMD's, 0 when it never started
	Outcome    string
	Reason     string
	Started    time.Time
	Duration   time.Duration // to the cut-over, the window's end, or the failure
}

// record adds r to the history. s.mu is held.
func (s *Supervisor) record(r Outcome) {
	s.history = generation.AppendBounded(s.history, r, HistoryLen)
}

// History returns the last HistoryLen upgrades that ended, oldest first.
func (s *Supervisor) History() []Outcome {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.history)
}

// Stats returns a copy of the counters.
func (s *Supervisor) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Workers = s.target
	st.ExitAfterTerm = slices.Clone(s.stats.ExitAfterTerm)
	return st
}

// Child is one CMD the supervisor runs, for `baton status`.
type Child struct {
	PID        int       `json:"pid"`
	Generation int       `json:"generation"`
	State      string    `json:"state"` // "starting", "serving", "standby", "draining"
	Started    time.Time `json:"started"`
	Status     string    `json:"status,omitempty"` // its last STATUS=
	// In a pool: its place (1...), the upgrade that started it, and how
	// many times that place's worker was started again after an exit.
	Worker   int `json:"worker,omitempty"`
	Version  int `json:"version,omitempty"`
	Restarts int `json:"restarts,omitempty"`
}

// Children returns the CMDs that run, by worker (a pool's) and generation.
func (s *Supervisor) Children() []Child {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Child, 0, len(s.byPID))
	for _, c := range s.byPID {
		if isClosed(c.done) {
			continue
		}
		ch := Child{PID: c.pid, Generation: c.n, State: c.state.String(), Started: c.started, Status: c.lastStatus}
		if s.cfg.pool() {
			ch.Worker, ch.Version = c.slot+1, c.version
			if c.slot < len(s.slots) {
				ch.Restarts = s.slots[c.slot].restarts
			}
		}
		out = append(out, ch)
	}
	slices.SortFunc(out, func(a, b Child) int { return cmp.Or(a.Worker-b.Worker, a.Generation-b.Generation) })
	return out
}

// PID returns the pid of the serving CMD (a pool's first), 0 when there is
// none.
func (s *Supervisor) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pidLocked()
}

func (s *Supervisor) pidLocked() int {
	for _, sl := range s.slots {
		if sl.c != nil {
			return sl.c.pid
		}
	}
	return 0
}

// servingSet returns the CMDs that serve: a pool's workers, and the
// standby CMD of a watch window.
func (s *Supervisor) servingSet() []*child {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.servingSetLocked()
}

func (s *Supervisor) servingSetLocked() []*child {
	var cs []*child
	for _, sl := range s.slots {
		if sl.c != nil && !isClosed(sl.c.done) {
			cs = append(cs, sl.c)
		}
	}
	if w := s.window; w != nil && w.old.state == stateStandby {
		cs = append(cs, w.old)
	}
	return cs
}

// statusOf is the STATUS= line for c becoming the serving CMD: its own last
// STATUS= if it sent one.
func (s *Supervisor) statusOf(c *child) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.lastStatus != "" {
		return "STATUS=" + c.lastStatus
	}
	return fmt.Sprintf("STATUS=serving: pid %d", c.pid)
}

// statusLine is the STATUS= line for the serving set: statusOf the CMD
// with one worker, the workers' pids in a pool.
func (s *Supervisor) statusLine() string {
	s.mu.Lock()
	if !s.cfg.pool() {
		c := s.slots[0].c
		s.mu.Unlock()
		return s.statusOf(c)
	}
	pids := make([]string, 0, len(s.slots))
	for _, sl := range s.slots {
		if sl.c != nil {
			pids = append(pids, strconv.Itoa(sl.c.pid))
		}
	}
	n := len(s.slots)
	s.mu.Unlock()
	return fmt.Sprintf("STATUS=serving: %d of %d workers (pids %s)", len(pids), n, strings.Join(pids, " "))
}

// manager forwards state to the real service manager, if any.
func (s *Supervisor) manager(state string) {
	if s.cfg.Manager == nil {
		return
	}
	if err := s.cfg.Manager(state); err != nil {
		s.log.Warn("notify service manager", "err", err)
	}
}

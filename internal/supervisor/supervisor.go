package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/batonhq/baton/internal/control"
	"github.com/batonhq/baton/notify"
)

// Defaults for the zero values of Config.
const (
	DefaultReadyTimeout  = 90 * time.Second // systemd's default TimeoutStartSec
	DefaultDrain         = 30 * time.Second
	DefaultWatchInterval = time.Second
)

// ReadyMode says when a started CMD counts as ready.
type ReadyMode int

const (
	// ReadyNotify (the zero value): when CMD sends READY=1; a CMD that has
	// not sent it within ReadyTimeout is a failed start.
	ReadyNotify ReadyMode = iota
	// ReadyExec: when CMD sends READY=1, or when it is still running
	// ReadyTimeout after it was started, for programs that do not speak
	// sd_notify. Choose a short ReadyTimeout with it.
	ReadyExec
)

var (
	// ErrInProgress is returned by Upgrade while another upgrade runs.
	ErrInProgress = errors.New("upgrade already in progress")
	// ErrNotRunning is returned by Upgrade, Signal and Stop outside Run.
	ErrNotRunning = errors.New("supervisor not running")
	// ErrStopping is returned (wrapped) by Upgrade after Stop, and by an
	// upgrade that a stop abandoned (its new CMD stopped). It is the value
	// `baton reload` reports as "stopping" (exit status 0: the stop
	// superseded the reload).
	ErrStopping = control.ErrStopping
	// ErrBinaryMissing means CMD's executable was not found or is not
	// executable.
	ErrBinaryMissing = errors.New("binary missing")
	// ErrExited means CMD exited before it was ready.
	ErrExited = errors.New("exited before ready")
	// ErrNotReady means CMD did not send READY=1 within ReadyTimeout.
	ErrNotReady = errors.New("not ready in time")
)

// Socket is one socket handed to CMD.
type Socket struct {
	Name string   // its LISTEN_FDNAMES entry; no ':'
	File *os.File // owned by the caller, who closes it after Run
}

// Config configures a Supervisor. The zero value of every field but Args is
// valid.
type Config struct {
	// Args is CMD and its arguments. Args[0] is looked up in PATH (or taken
	// as a path when it contains '/') at every start, so a binary replaced
	// by rename takes effect at the next upgrade.
	Args []string
	// Env is CMD's environment; nil means os.Environ(). LISTEN_*,
	// NOTIFY_SOCKET and WATCHDOG_PID are replaced.
	Env []string
	// Sockets are given to CMD at fd 3, 4, ... in this order.
	Sockets []Socket
	// Ready, ReadyTimeout: see ReadyMode; 0 means DefaultReadyTimeout.
	Ready        ReadyMode
	ReadyTimeout time.Duration
	// Drain is how long a replaced CMD has between SIGTERM (to its pid)
	// and SIGKILL (to its process group); 0 means DefaultDrain.
	Drain time.Duration
	// StopDelay, when positive, is a lame duck before a stop: Stop with
	// SIGTERM or SIGINT tells the manager STOPPING=1 at once, abandons an
	// upgrade in flight and refuses new ones, but sends the signal to the
	// serving CMD only StopDelay later, so that a load balancer (or
	// Kubernetes, which removes the endpoint as it sends SIGTERM) stops
	// sending traffic first. A second Stop during the delay ends it and
	// sends its own signal at once. Other signals are never delayed.
	StopDelay time.Duration
	// MaxDraining caps the replaced CMDs draining at once: when an upgrade
	// starts and the ones still draining, plus the serving one (which
	// drains after the upgrade), would be more than MaxDraining, the
	// oldest are killed first (SIGKILL to the process group, as after
	// Drain), logged ("force-closed draining generation G (pid P):
	// MaxDraining=N"), counted in Stats.ForceClosed and reported in the
	// STATUS= of the upgrade. Zero or negative: no cap, the default,
	// unlike handoff's: the supervisor cannot see whether a replaced CMD
	// still has requests in flight (a CMD with a fixed lame-duck period
	// looks the same), so killing it is the caller's decision.
	MaxDraining int
	// Watch, when set, is a file (typically CMD's binary) whose change
	// (new inode, size or mtime, stable for one interval) triggers an
	// upgrade. WatchInterval is the polling period; 0 means
	// DefaultWatchInterval.
	Watch         string
	WatchInterval time.Duration
	// Stdout and Stderr are CMD's; nil means the supervisor's own.
	Stdout, Stderr *os.File
	// Manager, when set, receives the notify messages for the real
	// service manager (READY, RELOADING, STATUS, WATCHDOG, STOPPING).
	Manager func(state string) error
	// ReapOrphans makes the supervisor reap every child of the process
	// (wait4(-1)), not only the CMDs: for PID 1 of a container or a child
	// subreaper. Nothing else in the process may wait for children then.
	ReapOrphans bool
	// NotifyAddress is the address of the socket given to CMD as
	// NOTIFY_SOCKET; "" means a fresh abstract address.
	NotifyAddress string
	// Logger, when set, receives the supervisor's events.
	Logger *slog.Logger
}

// ExitStatus is how a process ended.
type ExitStatus struct {
	Code   int            // exit code, -1 when killed by a signal
	Signal syscall.Signal // the signal that killed it, 0 otherwise
}

func (s ExitStatus) String() string {
	if s.Signal != 0 {
		return "killed by signal " + s.Signal.String()
	}
	return fmt.Sprintf("exit status %d", s.Code)
}

// ShellCode is the status a shell reports: the exit code, or 128+signal.
func (s ExitStatus) ShellCode() int {
	if s.Signal != 0 {
		return 128 + int(s.Signal)
	}
	return s.Code
}

// StartError is a CMD that could not be made ready.
type StartError struct {
	Path    string
	PID     int           // 0 when it was not started
	Status  *ExitStatus   // for ErrExited
	Timeout time.Duration // for ErrNotReady
	Err     error         // ErrBinaryMissing, ErrExited, ErrNotReady or a cause
}

func (e *StartError) Error() string {
	switch {
	case errors.Is(e.Err, ErrExited) && e.Status != nil:
		return fmt.Sprintf("%s (pid %d): child exited with %s before ready", e.Path, e.PID, e.Status)
	case errors.Is(e.Err, ErrNotReady):
		return fmt.Sprintf("%s (pid %d): not ready in %s", e.Path, e.PID, e.Timeout)
	case e.PID == 0:
		return fmt.Sprintf("%s: %v", e.Path, e.Err)
	}
	return fmt.Sprintf("%s (pid %d): %v", e.Path, e.PID, e.Err)
}

func (e *StartError) Unwrap() error { return e.Err }

// ExitError is returned by Run when the serving CMD exits by itself.
type ExitError struct {
	PID    int
	Status ExitStatus
}

func (e *ExitError) Error() string { return fmt.Sprintf("pid %d: %s", e.PID, e.Status) }

// Stats are counters for reports and tests.
type Stats struct {
	Generations    int // CMDs started
	Upgrades       int // successful upgrades
	FailedUpgrades int // upgrades rolled back
	OrphansReaped  int // children reaped that were not CMDs
	ForeignNotify  int // notify messages from unknown pids
	ForceClosed    int // draining CMDs killed for Config.MaxDraining
	// ExitAfterTerm is, for the last replaced CMDs (at most
	// ExitHistory, in the order they exited), the time from SIGTERM to exit.
	ExitAfterTerm []time.Duration
}

// ExitHistory bounds Stats.ExitAfterTerm, so that a supervisor upgraded
// without end keeps a constant amount of memory.
const ExitHistory = 64

// Supervisor runs CMD and replaces it on upgrade. Create it with New, run it
// with Run; Upgrade, Signal, PID and Stats may be called from any goroutine
// while Run runs.
type Supervisor struct {
	cfg Config
	log *slog.Logger

	mu        sync.Mutex
	running   bool
	stopping  chan struct{} // closed when Run begins to stop
	byPID     map[int]*generation
	current   *generation
	upgrading bool
	stopped   bool          // Stop was called
	cut       chan struct{} // non-nil while a stop delay runs; closed to end it
	ended     chan struct{} // closed when Run begins its return
	retired   []*generation // replaced CMDs, oldest first (those still draining at the last upgrade)
	changed   chan struct{} // closed and replaced when current changes
	idle      chan struct{} // an upgrade finished (buffered 1)
	trigger   chan struct{} // asynchronous upgrade request (buffered 1)
	stats     Stats
	notify    *notify.Listener
	reaper    *reaper
	wg        sync.WaitGroup // goroutines owned by Run
}

// New checks cfg and returns a Supervisor.
func New(cfg Config) (*Supervisor, error) {
	if len(cfg.Args) == 0 || cfg.Args[0] == "" {
		return nil, errors.New("supervisor: no command")
	}
	for _, s := range cfg.Sockets {
		if strings.ContainsRune(s.Name, ':') || s.File == nil {
			return nil, fmt.Errorf("supervisor: socket %q: name contains ':' or no file", s.Name)
		}
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = DefaultReadyTimeout
	}
	if cfg.Drain <= 0 {
		cfg.Drain = DefaultDrain
	}
	if cfg.WatchInterval <= 0 {
		cfg.WatchInterval = DefaultWatchInterval
	}
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Supervisor{
		cfg:     cfg,
		log:     log,
		byPID:   make(map[int]*generation),
		changed: make(chan struct{}),
		idle:    make(chan struct{}, 1),
		trigger: make(chan struct{}, 1),
	}, nil
}

// PID returns the pid of the serving CMD, 0 when there is none.
func (s *Supervisor) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current == nil {
		return 0
	}
	return s.current.pid
}

// Stats returns a copy of the counters.
func (s *Supervisor) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.ExitAfterTerm = append([]time.Duration(nil), s.stats.ExitAfterTerm...)
	return st
}

// Trigger asks for an upgrade without waiting for it (SIGHUP). Requests
// made while an upgrade runs are merged into one more upgrade after it.
func (s *Supervisor) Trigger() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

// Signal sends sig to the serving CMD's pid (not to its process group).
func (s *Supervisor) Signal(sig os.Signal) error {
	s.mu.Lock()
	g := s.current
	s.mu.Unlock()
	if g == nil {
		return ErrNotRunning
	}
	return g.signal(sig)
}

// Stop sends sig to the serving CMD's pid and ends the supervision: an upgrade in
// flight is abandoned (its new CMD stopped), no other starts, and Run returns
// once the serving CMD has exited, with its status. This is how a SIGTERM
// to `baton run` is forwarded. With Config.StopDelay, a first SIGTERM or
// SIGINT is sent only after the delay (see there); a Stop during the delay
// ends it and sends its own sig at once.
func (s *Supervisor) Stop(sig os.Signal) error {
	s.mu.Lock()
	if !s.running {
		s.mu.Unlock()
		return ErrNotRunning
	}
	first := !s.stopped
	s.stopped = true
	select {
	case <-s.stopping:
	default:
		close(s.stopping)
	}
	g := s.current
	if g == nil {
		s.mu.Unlock()
		return nil // the first start sees stopping and gives up
	}
	if d := s.cfg.StopDelay; first && d > 0 && (sig == syscall.SIGTERM || sig == syscall.SIGINT) && !isClosed(s.ended) {
		s.cut = make(chan struct{})
		s.wg.Add(1)
		go s.delayStop(d, sig, s.cut)
		s.mu.Unlock()
		s.manager(fmt.Sprintf("STOPPING=1\nSTATUS=stopping: pid %d serves for another %s", g.pid, d))
		s.log.Info("stop delay: the serving process goes on serving", "pid", g.pid, "delay", d, "signal", sig.String())
		return nil
	}
	if s.cut != nil {
		// A second stop: the delay ends, and this signal goes now.
		close(s.cut)
		s.cut = nil
		s.log.Info("stop delay cut short", "signal", sig.String())
	}
	s.mu.Unlock()
	return g.signal(sig)
}

// delayStop sends sig to the serving CMD after d, unless Stop cut the
// delay (and sent a signal itself) or Run returned.
func (s *Supervisor) delayStop(d time.Duration, sig os.Signal, cut chan struct{}) {
	defer s.wg.Done()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-cut:
		return
	case <-s.ended:
		return
	}
	s.mu.Lock()
	if s.cut != cut {
		s.mu.Unlock()
		return // cut at the same moment
	}
	s.cut = nil
	g := s.current
	s.mu.Unlock()
	if g != nil {
		s.log.Info("stop delay over: forwarding the signal", "pid", g.pid, "signal", sig.String())
		if err := g.signal(sig); err != nil {
			s.log.Warn("forward signal", "pid", g.pid, "err", err)
		}
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// Run starts CMD, waits until it is ready and supervises it until ctx is done
// (then every CMD gets SIGTERM, and SIGKILL after Drain, and Run returns nil)
// or the serving CMD exits by itself (Run returns an *ExitError). A first CMD
// that does not become ready is returned as a *StartError.
func (s *Supervisor) Run(ctx context.Context) (err error) {
	if err := s.open(); err != nil {
		return err
	}
	defer s.close()

	s.manager("STATUS=starting " + s.cfg.Args[0])
	g, err := s.start(ctx)
	if err != nil {
		s.mu.Lock()
		stopped := s.stopped
		s.mu.Unlock()
		if stopped {
			return nil // stopped before anything served
		}
		return err
	}
	s.mu.Lock()
	s.current = g
	s.mu.Unlock()
	s.manager("READY=1\n" + s.statusOf(g))
	s.log.Info("ready", "pid", g.pid, "generation", g.n)

	var watch <-chan time.Time
	var w *watcher
	if s.cfg.Watch != "" {
		w = newWatcher(s.cfg.Watch)
		t := time.NewTicker(s.cfg.WatchInterval)
		defer t.Stop()
		watch = t.C
	}
	pending := false
	for {
		s.mu.Lock()
		cur, changed := s.current, s.changed
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			s.stopAll("STOPPING=1\nSTATUS=stopping")
			return nil
		case <-cur.done:
			s.mu.Lock()
			still, upgrading := s.current == cur, s.upgrading && !s.stopped
			s.mu.Unlock()
			if !still {
				continue
			}
			if upgrading {
				// Let the upgrade decide: its CMD may take over.
				select {
				case <-changed:
				case <-s.idle:
				case <-ctx.Done():
				}
				continue
			}
			s.mu.Lock()
			asked := s.stopped
			s.mu.Unlock()
			level := slog.LevelWarn
			if asked {
				level = slog.LevelInfo
			}
			s.log.Log(ctx, level, "serving process exited", "pid", cur.pid, "status", cur.status.String())
			s.stopAll(fmt.Sprintf("STOPPING=1\nSTATUS=pid %d: %s", cur.pid, cur.status))
			return &ExitError{PID: cur.pid, Status: cur.status}
		case <-changed:
		case <-s.trigger:
			pending = !s.upgradeAsync(ctx)
		case <-s.idle:
			if pending {
				pending = !s.upgradeAsync(ctx)
			}
		case <-watch:
			if w.changed() {
				s.log.Info("watched file changed", "path", s.cfg.Watch)
				pending = !s.upgradeAsync(ctx)
			}
		}
	}
}

// upgradeAsync starts an upgrade in a goroutine; it reports false when one
// is already running.
func (s *Supervisor) upgradeAsync(ctx context.Context) bool {
	s.mu.Lock()
	busy := s.upgrading
	s.mu.Unlock()
	if busy {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if _, err := s.Upgrade(ctx); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, ErrNotRunning) && !errors.Is(err, ErrStopping) {
			s.log.Error("upgrade", "err", err)
		}
	}()
	return true
}

// Upgrade starts a new CMD, waits until it is ready, makes it the serving
// one and sends SIGTERM to the old one, which gets Drain to exit before
// SIGKILL. It returns the new CMD's pid. When the new CMD fails (a
// *StartError) it is killed and the old one keeps serving. Only one upgrade
// runs at a time: a concurrent call returns ErrInProgress. After Stop, or
// when a stop abandons it, the error wraps ErrStopping.
func (s *Supervisor) Upgrade(ctx context.Context) (int, error) {
	s.mu.Lock()
	switch {
	case !s.running || s.current == nil:
		s.mu.Unlock()
		return 0, ErrNotRunning
	case s.isStoppingLocked():
		s.mu.Unlock()
		return 0, ErrStopping
	case s.upgrading:
		pid := s.current.pid
		s.mu.Unlock()
		return 0, fmt.Errorf("pid %d serving: %w", pid, ErrInProgress)
	}
	s.upgrading = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.upgrading = false
		s.mu.Unlock()
		select {
		case s.idle <- struct{}{}:
		default:
		}
	}()

	note := s.capDraining()
	status := "upgrading"
	if note != "" {
		status += "; " + note
		note = "; " + note
	}
	s.manager(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d\nSTATUS=%s", monotonicUsec(), status))
	g, err := s.start(ctx)
	if err != nil {
		s.awaitStopRace(err)
	}
	s.mu.Lock()
	old := s.current
	stopping := s.isStoppingLocked()
	if err == nil && stopping {
		// Stopped while the new CMD started: it goes, the old one stays
		// to receive the stop.
		s.mu.Unlock()
		s.terminate(g)
		return 0, fmt.Errorf("new pid %d stopped: %w", g.pid, ErrStopping)
	}
	if err != nil && stopping {
		// Also when the failure came first: under systemd the new CMD
		// gets the stop's SIGTERM too.
		s.mu.Unlock()
		return 0, fmt.Errorf("%w: %w", ErrStopping, err)
	}
	if err != nil {
		s.stats.FailedUpgrades++
		s.mu.Unlock()
		s.log.Warn("upgrade rolled back", "err", err, "serving", old.pid)
		s.manager(fmt.Sprintf("READY=1\nSTATUS=upgrade failed, pid %d still serving: %v%s", old.pid, err, note))
		return 0, err
	}
	s.current = g
	s.stats.Upgrades++
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	s.manager("READY=1\n" + s.statusOf(g) + note)
	s.log.Info("upgraded", "pid", g.pid, "generation", g.n, "old", old.pid)
	s.retire(old)
	return g.pid, nil
}

// capDraining applies Config.MaxDraining before an upgrade: it forgets
// the replaced CMDs that have exited and kills the oldest of the others
// while they, plus the serving one, would be more than the cap. It returns
// what it did for STATUS=, "" when nothing.
func (s *Supervisor) capDraining() string {
	limit := s.cfg.MaxDraining
	s.mu.Lock()
	live := s.retired[:0]
	for _, g := range s.retired {
		if !isClosed(g.done) {
			live = append(live, g)
		}
	}
	clear(s.retired[len(live):])
	var kill []*generation
	for limit > 0 && len(live) > 0 && len(live)+1 > limit {
		kill = append(kill, live[0])
		live = live[1:]
	}
	s.retired = live
	s.stats.ForceClosed += len(kill)
	s.mu.Unlock()
	notes := make([]string, 0, len(kill))
	for _, g := range kill {
		s.kill(g)
		msg := fmt.Sprintf("force-closed draining generation %d (pid %d): MaxDraining=%d", g.n, g.pid, limit)
		s.log.Warn(msg, "pid", g.pid, "generation", g.n, "max_draining", limit)
		notes = append(notes, msg)
	}
	return strings.Join(notes, "; ")
}

// stopRaceGrace is how long an upgrade whose new CMD exited as if stopped
// waits for the supervisor's own stop before it calls that a failure.
const stopRaceGrace = 500 * time.Millisecond

// awaitStopRace waits up to stopRaceGrace for Stop when the new CMD failed
// as a stopped process ends (killed by SIGTERM or SIGINT, or exit status
// 0): a stop of the service signals its whole cgroup, and the new CMD may
// end before baton's own SIGTERM is handled. The stop is then the outcome.
func (s *Supervisor) awaitStopRace(err error) {
	var se *StartError
	if !errors.As(err, &se) || se.Status == nil {
		return
	}
	st := *se.Status
	if st.Signal != syscall.SIGTERM && st.Signal != syscall.SIGINT && (st.Signal != 0 || st.Code != 0) {
		return
	}
	s.mu.Lock()
	stopping := s.stopping
	s.mu.Unlock()
	t := time.NewTimer(stopRaceGrace)
	defer t.Stop()
	select {
	case <-stopping:
	case <-t.C:
	}
}

// isStoppingLocked reports whether Stop was called or Run began to stop.
// s.mu is held.
func (s *Supervisor) isStoppingLocked() bool {
	if s.stopped {
		return true
	}
	select {
	case <-s.stopping:
		return true
	default:
		return false
	}
}

// statusOf is the STATUS= line for g becoming the serving CMD: its own last
// STATUS= if it sent one.
func (s *Supervisor) statusOf(g *generation) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g.lastStatus != "" {
		return "STATUS=" + g.lastStatus
	}
	return fmt.Sprintf("STATUS=serving: pid %d", g.pid)
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

// Child is one CMD the supervisor runs, for `baton status`.
type Child struct {
	PID        int       `json:"pid"`
	Generation int       `json:"generation"`
	State      string    `json:"state"` // "starting", "serving", "draining"
	Started    time.Time `json:"started"`
	Status     string    `json:"status,omitempty"` // its last STATUS=
}

// Children returns the CMDs that run, by generation.
func (s *Supervisor) Children() []Child {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Child, 0, len(s.byPID))
	for _, g := range s.byPID {
		if isClosed(g.done) {
			continue
		}
		c := Child{PID: g.pid, Generation: g.n, State: "draining", Started: g.started, Status: g.lastStatus}
		switch {
		case g == s.current:
			c.State = "serving"
		case !isClosed(g.ready) && !slices.Contains(s.retired, g):
			c.State = "starting"
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Child) int { return a.Generation - b.Generation })
	return out
}

// Stopping reports whether a stop was requested.
func (s *Supervisor) Stopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.isStoppingLocked()
}

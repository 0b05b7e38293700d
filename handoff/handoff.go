package handoff

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/batonhq/baton/internal/control"
	"github.com/batonhq/baton/notify"
)

// Upgrader manages one generation of the process: its named sockets, its
// readiness, the upgrades it starts and its end. Create it with New at the
// top of main, before anything else reads the environment.
type Upgrader struct {
	cfg  Config
	log  *slog.Logger
	gen  int
	exe  string
	dir  string
	args []string
	fds  *fdSet

	parent    *net.UnixConn // hand-over channel from the predecessor; nil in generation 1
	parentPID int
	socket    string // the manager's NOTIFY_SOCKET, "" when none

	ctx    context.Context // cancelled by stop and Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu          sync.Mutex
	mgr         notifier      // nil until this generation is main
	phase       phase         // lifecycle.go; changed by enterLocked only
	closed      bool          // Close ran (resources released, not a phase)
	upgradeDone chan struct{} // non-nil while an upgrade runs
	successor   int
	stopped     chan struct{} // closed by the first Stop (Stopping)
	cutDelay    chan struct{} // closed by a second Stop: ends the stop delay
	delayCut    bool
	done        chan struct{}
	isMain      chan struct{} // closed when this generation became main
	control     *control.Server
	stopSignals func()

	// watchMu guards stopWatch: the watchdog runs while this generation is
	// main and stops before MAINPID is sent (SYSTEMD.md rule 2).
	watchMu   sync.Mutex
	stopWatch func() // cancels and joins the watchdog goroutine

	// draining are the older generations still draining, oldest first,
	// as far as this one knows (from its predecessor, pruned and capped
	// at each upgrade); selfStart is this process's start time. Both are
	// used by the one upgrade in flight only.
	draining  []procRef
	selfStart uint64
	// statusNote is what the predecessor's upgrade reports (generations
	// it force-closed), added to this generation's first STATUS= line.
	statusNote string

	// What Status reports beyond the above: when this process started,
	// the service's upgrade history (passed on to successors), when this
	// generation began to drain, and the drains it saw end.
	startedAt    time.Time
	hist         history
	drainSince   time.Time
	drainSeconds []float64
	// upgradeStart is when the upgrade in flight was requested.
	upgradeStart time.Time
	// becameMain is when this generation became the main process.
	becameMain time.Time

	servers  []Server   // registered by Serve (renewed by a rollback)
	running  []*running // those whose Serve was started
	spell    *spell     // the current stretch of serving
	serveErr chan error

	// The watch window: in the predecessor, the one running (nil for
	// none) and when it ends; in a successor, whether the predecessor
	// will watch it (BATON_HANDOFF_WATCH).
	window     *window
	watchUntil time.Time
	watched    bool

	// beforeHandOver, when set (tests), runs after the successor is ready
	// and before the liveness check and MAINPID.
	beforeHandOver func(pid int)
	// beforeMain, when set (tests), runs after MAINPID and BARRIER=1 and
	// before MAIN is written to the successor.
	beforeMain func(pid int)
	// afterReadySent, when set (tests), runs in a successor right after it
	// told its predecessor it is ready.
	afterReadySent func()
}

// Generation returns this process's generation: 1 for a process started
// by hand or by the manager, n+1 for the successor of generation n.
func (u *Upgrader) Generation() int { return u.gen }

// Done is closed when this generation must stop serving: it handed over to
// a successor, or a stop was requested (SIGTERM, SIGINT, Stop).
func (u *Upgrader) Done() <-chan struct{} { return u.done }

// Stopping is closed as soon as a stop is requested (SIGTERM, SIGINT,
// Stop), Config.StopDelay before Done is closed and the drain starts: a
// health check reads it to answer 503 while the generation still serves.
// A hand-over does not close it.
func (u *Upgrader) Stopping() <-chan struct{} { return u.stopped }

// HandedOver reports whether a successor is now the main process.
func (u *Upgrader) HandedOver() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.phase == phaseHandedOver
}

// Listen returns a stream listener for name: the inherited socket with that
// name (from the manager's LISTEN_FDS or the predecessor), or a socket
// bound now with net.Listen(network, addr). The listener is the net
// package's own (no wrapper); a unix socket path is never removed by Close.
//
// Who decides the address: for a socket from the manager (a socket unit,
// the fd store) the unit does, and addr is what a process started by hand
// binds. For a socket a generation bound itself, addr does: when the
// inherited one is bound elsewhere (a new version configured for another
// port), Listen binds addr and the old socket is left to the generations
// that still hold it; an error names both addresses when addr cannot be
// bound. Sockets a generation bound that this one has not taken by Ready
// are not passed on to its successor.
func (u *Upgrader) Listen(name, network, addr string) (net.Listener, error) {
	ln, err := u.fds.listen(name, network, addr)
	if err != nil {
		return nil, fmt.Errorf("handoff: listen %s: %w", name, err)
	}
	u.storeFDs()
	return ln, nil
}

// ListenPacket is Listen for datagram sockets (net.ListenPacket).
func (u *Upgrader) ListenPacket(name, network, addr string) (net.PacketConn, error) {
	pc, err := u.fds.listenPacket(name, network, addr)
	if err != nil {
		return nil, fmt.Errorf("handoff: listen packet %s: %w", name, err)
	}
	u.storeFDs()
	return pc, nil
}

// File returns the inherited file named name, or the one open returns,
// which is then passed to successors. The caller owns (and closes) the
// returned file; the Upgrader keeps its own copy.
func (u *Upgrader) File(name string, open func() (*os.File, error)) (*os.File, error) {
	f, err := u.fds.file(name, open)
	if err != nil {
		return nil, fmt.Errorf("handoff: file %s: %w", name, err)
	}
	u.storeFDs()
	return f, nil
}

// Serve registers s and runs s.Serve in a goroutine owned by the Upgrader
// once this generation is main: at once after Ready returned, otherwise
// when Ready makes it main. A successor thus accepts nothing before the
// hand-over, and a successor that fails never had a connection to drop
// (connections wait in the shared socket's backlog, or are taken by the
// predecessor). Wait drains s with s.Shutdown when the generation ends.
func (u *Upgrader) Serve(s Server) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.servers = append(u.servers, s)
	if u.phase.accepting() {
		u.startLocked(s)
	}
}

// running is a server whose Serve was started.
type running struct {
	s    Server
	done chan struct{} // closed when its Serve returned
}

// startLocked starts s.Serve; called with u.mu held.
func (u *Upgrader) startLocked(s Server) {
	r := &running{s: s, done: make(chan struct{})}
	u.running = append(u.running, r)
	go func() {
		defer close(r.done)
		if err := s.Serve(); err != nil {
			select {
			case u.serveErr <- err:
			default:
			}
		}
	}()
}

// spell is one stretch of serving: from Ready (or a rollback) to the
// cut-over or stop that ends it.
type spell struct {
	end     chan struct{} // closed when the spell ends
	servers []*running    // the servers to drain; set before end is closed
	win     *window       // the watch window that ended it, nil for none
}

func newSpell() *spell { return &spell{end: make(chan struct{})} }

// endSpellLocked ends the current spell once: its servers are to drain,
// win (nil for none) is the watch window that ended it. Called with u.mu
// held.
func (u *Upgrader) endSpellLocked(win *window) {
	sp := u.spell
	if isClosed(sp.end) {
		return
	}
	sp.servers, sp.win = u.running, win
	close(sp.end)
}

// Wait blocks until the generation ends (handed over, stopped, or a server
// given to Serve failed), then drains every server under DrainTimeout and
// returns. It returns nil after a clean hand-over or stop, the server's
// error when one failed, or the drain's error (ctx.Err() of the deadline
// when servers had to be force-closed).
//
// With Config.WatchWindow, Wait drains the servers at the cut-over and
// returns when the window has passed; when the successor ends within it,
// the servers serve again (Renewer) and Wait goes on as before the upgrade.
//
// In a process that is PID 1 of its pid namespace (a container's
// entrypoint) and handed over, Wait does not return: the process stays as
// the namespace's init, reaping and passing signals on to the generations
// after it, and exits with the status of the last one (see the package
// doc, Containers).
func (u *Upgrader) Wait() error {
	for {
		u.mu.Lock()
		sp := u.spell
		u.mu.Unlock()
		var failed error
		select {
		case <-sp.end:
		case failed = <-u.serveErr:
			u.log.Error("server failed, stopping", "err", failed)
			u.Stop()
			<-sp.end
		}
		err := u.drain(sp)
		if failed == nil && sp.win != nil {
			<-sp.win.done
			if sp.win.rolledBack {
				continue // serving again, in a new spell
			}
		}
		u.closeControl()
		if failed != nil {
			return failed
		}
		if u.HandedOver() && os.Getpid() == 1 {
			// PID 1 of its namespace: its exit would kill the successor.
			u.serveAsInit()
		}
		return err
	}
}

func (u *Upgrader) successorPID() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.successor
}

// drain shuts the servers of sp down under DrainTimeout.
func (u *Upgrader) drain(sp *spell) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), u.cfg.drainTimeout())
	defer cancel()
	ctx = context.WithValue(ctx, drainKey{}, drainConfig{streamGrace: u.cfg.streamGrace(), newConnGrace: u.cfg.newConnGrace()})
	if sp.win != nil {
		ctx = withRenew(ctx)
	}
	errs := make([]error, len(sp.servers))
	var wg sync.WaitGroup
	for i, r := range sp.servers {
		wg.Go(func() { errs[i] = r.s.Shutdown(ctx) })
	}
	wg.Wait()
	for _, r := range sp.servers {
		<-r.done
	}
	err := errors.Join(errs...)
	u.log.Info("drained", "generation", u.gen, "took", time.Since(start), "err", err)
	return err
}

// Stop ends the generation gracefully: an upgrade in flight is abandoned
// (its successor killed), Stopping is closed, the manager is told
// STOPPING=1 when this generation is the main process, and Done is
// closed. A main generation that has not handed over goes on serving for
// Config.StopDelay between STOPPING=1 and Done; Stop returns when Done is
// closed. Called again while the delay runs, Stop ends the delay at once
// and returns. SIGTERM and SIGINT call it.
func (u *Upgrader) Stop() {
	u.mu.Lock()
	if isClosed(u.stopped) {
		if !u.delayCut {
			u.delayCut = true
			close(u.cutDelay)
		}
		u.mu.Unlock()
		return
	}
	close(u.stopped)
	wait := u.upgradeDone
	sayStopping := false
	switch u.phase {
	case phaseStarting:
		if u.parent != nil {
			// A successor asked to stop before it said READY declines
			// the hand-over: the predecessor sees the channel close and
			// keeps serving.
			_ = u.parent.Close()
		}
		u.enterLocked(phaseStopped)
	case phaseAwaitingMain:
		// The predecessor's answer is awaited: on MAIN this process
		// becomes main just to say STOPPING=1 (becomeMain).
		u.enterLocked(phaseStopped)
	case phaseProbation:
		// The predecessor still holds the main PID and rolls back at
		// once (watch.go).
		_, _ = u.parent.Write([]byte(msgStopping))
		u.enterLocked(phaseStopped)
	case phaseWatching:
		// Main but no longer accepting: the window ends without a
		// rollback, the successor is told to stop (watch.go). When the
		// window's end is handing the main PID over, its outcome is
		// awaited first.
		if wait == nil {
			u.enterLocked(phaseStopped)
			sayStopping = true
		}
	case phaseServing, phaseUpgrading:
		u.enterLocked(phaseStopping)
	}
	u.mu.Unlock()
	u.cancel()
	if wait != nil {
		<-wait
	}
	u.mu.Lock()
	switch u.phase {
	case phaseWatching: // the hand-over at the window's end failed
		u.enterLocked(phaseStopped)
		sayStopping = true
	case phaseServing: // rolled back while the stop waited
		u.enterLocked(phaseStopping)
	}
	serving := u.phase == phaseStopping
	if serving || sayStopping {
		if err := u.mgr.Stopping(); err != nil {
			u.log.Warn("sd_notify", "err", err)
		}
	}
	u.mu.Unlock()
	if d := u.cfg.StopDelay; serving && d > 0 {
		u.log.Info("stop delay: serving on", "generation", u.gen, "delay", d)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-u.cutDelay:
			u.log.Info("stop delay cut short", "generation", u.gen)
		}
		t.Stop()
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if serving {
		u.removePIDFile()
		u.enterLocked(phaseStopped)
	}
	u.endLocked()
}

// endLocked closes Done once and stops what only the main generation runs.
func (u *Upgrader) endLocked() {
	select {
	case <-u.done:
		return
	default:
	}
	close(u.done)
	u.endSpellLocked(nil)
	u.stopWatchdog()
	if u.control != nil && u.phase != phaseHandedOver {
		// A draining generation keeps answering `baton status` until its
		// drain ends (closeControl).
		c := u.control
		u.control = nil
		// The request that ended this generation (a reload) is still to
		// be answered, and handlers may wait for u.mu: not here.
		u.wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), DefaultBarrierTimeout)
			defer cancel()
			_ = c.Shutdown(ctx)
		})
	}
}

// closeControl closes the control socket, if it is still open, once the
// requests in flight are answered.
func (u *Upgrader) closeControl() {
	u.mu.Lock()
	c := u.control
	u.control = nil
	u.mu.Unlock()
	if c != nil {
		ctx, cancel := context.WithTimeout(context.Background(), DefaultBarrierTimeout)
		defer cancel()
		_ = c.Shutdown(ctx)
	}
}

// Close releases everything the Upgrader holds: signal handlers, the
// control socket, the kept copies of the sockets, the manager connection.
// It stops the generation first if Wait did not. Listeners and servers
// handed to the program are the program's to close.
func (u *Upgrader) Close() error {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return nil
	}
	u.closed = true
	u.mu.Unlock()
	u.Stop()
	u.closeControl()
	u.cancel()
	u.mu.Lock()
	u.closeOS()
	u.mu.Unlock()
	u.wg.Wait()
	u.fds.close()
	u.mu.Lock()
	defer u.mu.Unlock()
	var err error
	if u.parent != nil {
		_ = u.parent.Close()
	}
	if u.mgr != nil {
		err = u.mgr.Close()
	}
	return err
}

// startWatchdog pings the manager at half of WATCHDOG_USEC while the
// watchdog is this process's (notify.RunWatchdog: WATCHDOG_PID unset or
// ours; a successor makes it its own).
func (u *Upgrader) startWatchdog(mgr notifier) {
	u.watchMu.Lock()
	defer u.watchMu.Unlock()
	if u.stopWatch != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	u.wg.Go(func() {
		defer close(done)
		cfg := notify.WatchdogConfig{OnError: func(err error) { u.log.Warn("watchdog ping failed, retrying at the next tick", "err", err) }}
		if err := mgr.RunWatchdog(ctx, cfg); err != nil {
			u.log.Warn("watchdog", "err", err)
		}
	})
	u.stopWatch = func() { cancel(); <-done }
}

// stopWatchdog stops the pings; once it returns none is in flight.
func (u *Upgrader) stopWatchdog() {
	u.watchMu.Lock()
	stop := u.stopWatch
	u.stopWatch = nil
	u.watchMu.Unlock()
	if stop != nil {
		stop()
	}
}

package handoff

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/batonhq/baton/internal/control"
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

	traps traps // traps.go

	parent    *net.UnixConn // hand-over channel from the predecessor; nil in generation 1
	parentPID int
	socket    string // the manager's NOTIFY_SOCKET, "" when none

	ctx    context.Context // cancelled by stop and Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu          sync.Mutex
	mgr         notifier      // nil until this generation is main
	phase       phase         // generation.go; changed by enterLocked only
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
	// main and stops before MAINPID is sent (docs/systemd-notes.md, rule 2).
	watchMu   sync.Mutex
	stopWatch func() // cancels and joins the watchdog goroutine

	// draining are the older generations still draining, oldest first,
	// as far as this one knows (from its predecessor, pruned and capped
	// at each upgrade); selfStart is this process's start time. Both are
	// used by the one upgrade in flight only.
	draining      []procRef
	selfStart     uint64
	selfStartRead chan struct{} // closed once selfStart is set
	// notified is closed once the signals are caught (New).
	notified chan struct{}
	// The predecessor's history, parsed in the background (readHistory)
	// until histParsed is closed, then taken (takeHistoryLocked).
	histParsed chan struct{}
	histIn     history
	histStart  time.Time
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

	servers  []Server   // registered by Serve
	started  int        // how many of servers were started
	running  []*running // those whose Serve was started
	serveErr chan error
	// listeners are those Listen returned: paused while a successor
	// serves and this generation holds the main PID (phaseWatching).
	listeners []*listener
	// held: a successor's listeners are paused and its servers started
	// from READY until SERVE (holdLocked).
	held bool
	// The drain: started on entering handed over or stopped, once;
	// drained is closed when it has ended, with drainErr.
	drainStarted bool
	drained      chan struct{}
	drainErr     error
	// successors are the reaps of successors this generation rolled back
	// or told to stop (ABORT) in a watch window: PID 1 waits for them
	// before Wait returns (its exit would kill them in the middle of
	// their drain).
	successors sync.WaitGroup
	// stopDropTimer stops the timer that closes the sockets dropped at
	// Ready (fds_linux.go), nil when none.
	stopDropTimer func()
	// refused counts the lifecycle transitions refused (bugs); onRefused,
	// when set (tests), is told of each.
	refused   int
	onRefused func(error)

	// The watch window: in the predecessor, the one running (nil for
	// none) and when it ends; in a successor, whether the predecessor
	// will watch it (BATON_HANDOFF_WATCH).
	window     *window
	watchUntil time.Time
	watched    bool
	watchFor   time.Duration // the predecessor's window, 0 when not told

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
// a successor, or a stop was requested (SIGTERM, SIGINT, Stop); its drain
// starts then. With Config.WatchWindow a hand-over closes it when the
// window has passed, not at the cut-over (the generation is only paused
// meanwhile, and a rollback resumes it).
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
// are not passed on to its successor; a Listen after Ready still takes
// such a socket back (by name and address) while the predecessor that
// holds it drains (until it exits, DrainTimeout at most), instead of
// failing to bind it.
//
// The listener is the net package's one with an Accept that the Upgrader
// pauses while the successor takes over (and resumes on a rollback): any
// server that accepts on it, net/http, gRPC or a loop of the program's
// own, stops accepting at the cut-over without being shut down. It has
// the net package's SetDeadline, File and SyscallConn, and Unwrap returns
// the net package's listener (*net.TCPListener, *net.UnixListener), whose
// Accept the Upgrader cannot pause.
func (u *Upgrader) Listen(name, network, addr string) (net.Listener, error) {
	ln, err := u.fds.listen(name, network, addr)
	if err != nil {
		return nil, fmt.Errorf("handoff: listen %s: %w", name, err)
	}
	ln = pausable(ln)
	u.mu.Lock()
	if l, ok := ln.(*listener); ok {
		u.listeners = append(u.listeners, l)
		if u.phase == phaseWatching || u.held {
			l.pause()
		}
	}
	u.mu.Unlock()
	u.storeFDs()
	u.trapListen(name, ln)
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

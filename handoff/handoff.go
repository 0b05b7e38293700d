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

	"github.com/batonhq/baton/activation"
	"github.com/batonhq/baton/internal/control"
	"github.com/batonhq/baton/notify"
)

// Defaults for the zero Config.
const (
	DefaultReadyTimeout = 5 * time.Second
	DefaultDrainTimeout = 30 * time.Second
	// DefaultBarrierTimeout bounds the wait for the manager to confirm it
	// read the hand-over (BARRIER=1).
	DefaultBarrierTimeout = 5 * time.Second
	// DefaultMaxDraining is the cap on draining generations when
	// Config.MaxDraining is zero: room for a storm of back-to-back
	// upgrades whose generations each drain for a few milliseconds, and
	// a bound for those held by long connections.
	DefaultMaxDraining = 8
)

// Config configures an Upgrader. The zero value is valid.
type Config struct {
	// ReadyTimeout bounds the time from starting a successor to its
	// readiness (DefaultReadyTimeout when zero).
	ReadyTimeout time.Duration
	// DrainTimeout bounds the drain of a generation that handed over or
	// was stopped (DefaultDrainTimeout when zero); then servers are
	// force-closed.
	DrainTimeout time.Duration
	// StopDelay is a lame duck before a stop, for load balancers and
	// Kubernetes: when the main generation is asked to stop (SIGTERM,
	// SIGINT, Stop), Stopping is closed and the manager told STOPPING=1
	// at once, but the generation goes on serving for StopDelay; only then
	// is Done closed and the drain started. A health check that answers
	// 503 once Stopping is closed takes the instance out of rotation
	// before it stops accepting. A second SIGTERM or SIGINT (or Stop, or
	// Close) during the delay ends it at once. Upgrades do not wait: a
	// generation that hands over drains at once, and an upgrade asked for
	// during the delay is refused (ErrStopping). Zero or negative: no
	// delay. Under systemd, TimeoutStopSec= must cover StopDelay plus
	// DrainTimeout (`baton units --stop-delay`).
	StopDelay time.Duration
	// MaxDraining caps the generations draining at once. When an upgrade
	// starts and the older generations still draining, plus this one
	// (which drains after the hand-over), would be more than MaxDraining,
	// the oldest are killed (SIGKILL) first, so that a storm of reloads
	// with long-lived connections cannot pile up processes. Each one is
	// logged ("force-closed draining generation G (pid P): MaxDraining=N",
	// level Warn) and reported in the STATUS= line of the upgrade and in
	// the first STATUS= line of the successor. A generation learns the
	// older ones from its predecessor with each one's start time, so a pid
	// reused by another process is never signalled. Zero means
	// DefaultMaxDraining; negative means no cap.
	MaxDraining int
	// NewConnGrace bounds how long a draining HTTPServer keeps a
	// connection that has not sent its first request (a slow client, a
	// TLS handshake in progress) when its http.Server has no
	// ReadHeaderTimeout; DefaultNewConnGrace when zero or negative. The
	// drain's deadline (DrainTimeout) bounds it anyway.
	NewConnGrace time.Duration
	// StreamGrace is when, after the drain began, the contexts of HTTP
	// requests still running are cancelled, so that handlers streaming
	// until r.Context() is done (Server-Sent Events) return and end their
	// responses cleanly before DrainTimeout force-closes what is left.
	// Zero or negative means three quarters of DrainTimeout; it must be
	// shorter than DrainTimeout.
	StreamGrace time.Duration
	// PIDFile, when set, is rewritten atomically with the pid of the
	// current main process each time a generation becomes main.
	PIDFile string
	// Logger receives what the Upgrader does; nil means silence.
	Logger *slog.Logger
	// NoSignals leaves SIGHUP, SIGTERM and SIGINT alone; by default SIGHUP
	// starts an upgrade and SIGTERM and SIGINT stop the generation.
	NoSignals bool
	// NoControl disables the control socket used by `baton reload`.
	NoControl bool
	// NoFDStore keeps the sockets and files this process opens itself
	// (Listen, ListenPacket and File when nothing was inherited) out of
	// the manager's fd store. By default the main generation sends each
	// of them once with FDSTORE=1 and FDNAME=<name>, so a service without
	// a socket unit keeps its sockets across `systemctl restart` and a
	// crash with Restart=: the next process receives them as LISTEN_FDS
	// and no connection is refused meanwhile. systemd ignores the message
	// unless the unit sets FileDescriptorStoreMax= (`baton units
	// --fdstore N`).
	NoFDStore bool
}

func (c *Config) readyTimeout() time.Duration {
	if c.ReadyTimeout > 0 {
		return c.ReadyTimeout
	}
	return DefaultReadyTimeout
}

// maxDraining is the cap, 0 for none.
func (c *Config) maxDraining() int {
	switch {
	case c.MaxDraining < 0:
		return 0
	case c.MaxDraining == 0:
		return DefaultMaxDraining
	}
	return c.MaxDraining
}

func (c *Config) drainTimeout() time.Duration {
	if c.DrainTimeout > 0 {
		return c.DrainTimeout
	}
	return DefaultDrainTimeout
}

func (c *Config) streamGrace() time.Duration {
	if c.StreamGrace > 0 {
		return c.StreamGrace
	}
	return c.drainTimeout() * 3 / 4
}

func (c *Config) newConnGrace() time.Duration {
	if c.NewConnGrace > 0 {
		return c.NewConnGrace
	}
	return DefaultNewConnGrace
}

// check refuses a Config whose durations contradict each other.
func (c *Config) check() error {
	if c.StreamGrace > 0 && c.StreamGrace >= c.drainTimeout() {
		return fmt.Errorf("handoff: StreamGrace %v is not shorter than DrainTimeout %v", c.StreamGrace, c.drainTimeout())
	}
	return nil
}

var (
	// ErrInProgress is returned (wrapped) by Upgrade while another upgrade
	// runs. It is the value `baton reload` reports as "in progress".
	ErrInProgress = control.ErrInProgress
	// ErrNotReady is returned by Upgrade before Ready.
	ErrNotReady = errors.New("handoff: generation not ready")
	// ErrHandedOver is returned by Upgrade in a generation that already
	// handed over to its successor.
	ErrHandedOver = errors.New("handoff: generation already handed over")
	// ErrStopping is returned (wrapped) by Upgrade once the generation is
	// stopping, and by an upgrade that a stop abandoned. It is the value
	// `baton reload` reports as "stopping" (exit status 0: the stop
	// superseded the reload).
	ErrStopping = control.ErrStopping
	// ErrAborted is returned by Ready in a successor whose predecessor gave
	// up on it (timeout, stop). The process should exit.
	ErrAborted = errors.New("handoff: predecessor aborted the upgrade")
	// ErrReadyTimeout is wrapped by the UpgradeError of a successor that
	// was not ready within ReadyTimeout.
	ErrReadyTimeout = errors.New("not ready in time")
	// ErrSuccessorExited is wrapped by the UpgradeError of a successor that
	// exited (or closed its hand-over channel) before the hand-over.
	ErrSuccessorExited = errors.New("successor exited")
	// ErrBadEnvironment is wrapped when LISTEN_FDS or a BATON_HANDOFF_
	// variable is malformed.
	ErrBadEnvironment = errors.New("malformed environment")
	// ErrProtocolVersion is wrapped when a generation and its successor
	// speak different versions of the hand-over protocol (two releases of
	// this package that cannot hand over): the upgrade fails naming both,
	// and the successor's New returns it.
	ErrProtocolVersion = errors.New("hand-over protocol version mismatch")
	// ErrBadName is wrapped for a socket name that LISTEN_FDNAMES cannot
	// carry to a successor (activation.CheckName: empty, over 255 bytes,
	// ':', a control character or a non-ASCII byte).
	ErrBadName = activation.ErrBadName
	// ErrNotSupported is wrapped by Upgrade (and logged on SIGHUP) on
	// systems other than Linux, where a generation serves and drains but
	// cannot hand over (see the package doc, Other systems).
	ErrNotSupported = errors.New("not supported on this system")
)

// UpgradeError describes a failed upgrade: the successor was killed and
// reaped, and this generation keeps serving.
type UpgradeError struct {
	Generation int    // the successor's generation number
	PID        int    // the successor's pid, 0 when it never started
	Stage      string // "start", "ready" or "handover"
	Err        error
}

func (e *UpgradeError) Error() string {
	if e.PID == 0 {
		return fmt.Sprintf("upgrade to generation %d: %s: %v", e.Generation, e.Stage, e.Err)
	}
	return fmt.Sprintf("upgrade to generation %d (pid %d): %s: %v", e.Generation, e.PID, e.Stage, e.Err)
}

func (e *UpgradeError) Unwrap() error { return e.Err }

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
	mgr         notifier // nil until this generation is main
	ready       bool
	readySent   bool // a successor told its predecessor READY
	main        bool
	handedOver  bool
	stopping    bool
	closed      bool
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

	servers  []Server // registered by Serve
	started  []Server // those whose Serve runs
	serveErr chan error
	serveWG  sync.WaitGroup

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
	return u.handedOver
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
	if u.main {
		u.startLocked(s)
	}
}

// startLocked starts s.Serve; called with u.mu held.
func (u *Upgrader) startLocked(s Server) {
	u.started = append(u.started, s)
	u.serveWG.Add(1)
	go func() {
		defer u.serveWG.Done()
		if err := s.Serve(); err != nil {
			select {
			case u.serveErr <- err:
			default:
			}
		}
	}()
}

// Wait blocks until the generation ends (handed over, stopped, or a server
// given to Serve failed), then drains every server under DrainTimeout and
// returns. It returns nil after a clean hand-over or stop, the server's
// error when one failed, or the drain's error (ctx.Err() of the deadline
// when servers had to be force-closed).
//
// In a process that is PID 1 of its pid namespace (a container's
// entrypoint) and handed over, Wait does not return: the process stays as
// the namespace's init, reaping and passing signals on to the generations
// after it, and exits with the status of the last one (see the package
// doc, Containers).
func (u *Upgrader) Wait() error {
	var failed error
	select {
	case <-u.done:
	case failed = <-u.serveErr:
		u.log.Error("server failed, stopping", "err", failed)
		u.Stop()
	}
	err := u.drain()
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

func (u *Upgrader) successorPID() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.successor
}

func (u *Upgrader) drain() error {
	u.mu.Lock()
	servers := append([]Server(nil), u.started...)
	u.mu.Unlock()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), u.cfg.drainTimeout())
	defer cancel()
	ctx = context.WithValue(ctx, drainKey{}, drainConfig{streamGrace: u.cfg.streamGrace(), newConnGrace: u.cfg.newConnGrace()})
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Go(func() { errs[i] = s.Shutdown(ctx) })
	}
	wg.Wait()
	u.serveWG.Wait()
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
	if u.stopping {
		if !u.delayCut {
			u.delayCut = true
			close(u.cutDelay)
		}
		u.mu.Unlock()
		return
	}
	u.stopping = true
	close(u.stopped)
	wait := u.upgradeDone
	if u.parent != nil && !u.main && !u.readySent {
		// A successor asked to stop before it said READY declines the
		// hand-over: the predecessor sees the channel close and keeps
		// serving. After READY the predecessor's answer is awaited: on
		// MAIN this process becomes main just to say STOPPING=1.
		_ = u.parent.Close()
	}
	u.mu.Unlock()
	u.cancel()
	if wait != nil {
		<-wait
	}
	u.mu.Lock()
	serving := u.main && !u.handedOver
	if serving {
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
	u.stopWatchdog()
	if u.control != nil && !u.handedOver {
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

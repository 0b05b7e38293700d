package handoff

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/batonhq/baton/activation"
	"github.com/batonhq/baton/internal/control"
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
	// WatchWindow keeps this generation, after it cut over to its
	// successor, holding the main PID and its sockets for that long (see
	// the package doc, Watch window): it pauses accepting at the cut-over
	// (reversibly: nothing is drained, no hook runs), and a successor that
	// exits, is killed or is stopped alone within the window is rolled
	// back: this generation resumes accepting at once (connections wait
	// in the sockets' backlog meanwhile; none is refused). The manager
	// learns the successor's pid (MAINPID=) only when the window has
	// passed; the drain starts then. Any server works (no wrapper): the
	// pause is the listener's (Listen). Zero or negative: no window, the
	// main PID moves right after the cut-over.
	WatchWindow time.Duration
	// PIDFile, when set, is rewritten atomically with the pid of the
	// current main process each time a generation becomes main.
	PIDFile string
	// Logger receives what the Upgrader does; nil means slog.Default()
	// (slog.New(slog.DiscardHandler) silences it).
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
	ErrInProgress error = wrapped{"upgrade already in progress", control.ErrInProgress}
	// ErrNotReady is returned by Upgrade before Ready.
	ErrNotReady = errors.New("generation not ready")
	// ErrHandedOver is returned by Upgrade in a generation that already
	// handed over to its successor.
	ErrHandedOver = errors.New("generation already handed over")
	// ErrStopping is returned (wrapped) by Upgrade once the generation is
	// stopping, and by an upgrade that a stop abandoned. It is the value
	// `baton reload` reports as "stopping" (exit status 0: the stop
	// superseded the reload).
	ErrStopping error = wrapped{"generation stopping", control.ErrStopping}
	// ErrAborted is returned by Ready in a successor whose predecessor gave
	// up on it (timeout, stop). The process should exit.
	ErrAborted = errors.New("predecessor aborted the upgrade")
	// ErrReadyTimeout is wrapped by the UpgradeError of a successor that
	// was not ready within ReadyTimeout.
	ErrReadyTimeout = errors.New("not ready in time")
	// ErrSuccessorExited is wrapped by the UpgradeError of a successor that
	// exited (or closed its hand-over channel) before the hand-over.
	ErrSuccessorExited = errors.New("successor exited")
	// ErrRolledBack is wrapped by the UpgradeError (Stage "watch") of a
	// successor that ended within the watch window: this generation
	// serves again (UpgradeWatched, `baton reload --wait-window`, which
	// exits 1). It wraps control.ErrFailed: the upgrade failed.
	ErrRolledBack error = wrapped{"upgrade failed: rolled back in the watch window", control.ErrRolledBack}
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
	// cannot hand over (see the package doc, Other systems). It wraps
	// errors.ErrUnsupported.
	ErrNotSupported error = wrapped{"not supported on this system", errors.ErrUnsupported}
)

// wrapped is a sentinel that wraps a more general one (or the control
// protocol's, which `baton reload` reports), so that no exported value is
// an internal package's.
type wrapped struct {
	msg string
	err error
}

func (w wrapped) Error() string { return w.msg }
func (w wrapped) Unwrap() error { return w.err }

// UpgradeError describes a failed upgrade: the successor was killed and
// reaped, and this generation keeps serving.
type UpgradeError struct {
	Generation int    // the successor's generation number
	PID        int    // the successor's pid, 0 when it never started
	Stage      string // "start", "ready", "handover" or "watch"
	Err        error
}

func (e *UpgradeError) Error() string {
	if e.PID == 0 {
		return fmt.Sprintf("upgrade to generation %d: %s: %v", e.Generation, e.Stage, e.Err)
	}
	return fmt.Sprintf("upgrade to generation %d (pid %d): %s: %v", e.Generation, e.PID, e.Stage, e.Err)
}

func (e *UpgradeError) Unwrap() error { return e.Err }

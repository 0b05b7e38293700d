package supervisor

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"
)

// Defaults for the zero values of Config.
const (
	DefaultReadyTimeout    = 90 * time.Second // systemd's default TimeoutStartSec
	DefaultDrain           = 30 * time.Second
	DefaultWatchInterval   = time.Second
	DefaultRestartDelay    = 100 * time.Millisecond
	DefaultMaxRestartDelay = 30 * time.Second
	DefaultReadyHint       = 5 * time.Second
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
	// ReadyHint is how long a started CMD may stay silent before the
	// supervisor logs what it waits for (READY=1 on NOTIFY_SOCKET from
	// the CMD's pid), and how to do without it; 0 means
	// DefaultReadyHint, negative never. Only with ReadyNotify.
	ReadyHint time.Duration
	// Drain is how long a replaced CMD has between SIGTERM (to its pid)
	// and SIGKILL (to its process group); 0 means DefaultDrain.
	Drain time.Duration
	// StopDelay, when positive, is a lame duck before a stop: Stop with
	// SIGTERM or SIGINT tells the manager STOPPING=1 at once, abandons an
	// upgrade in flight and refuses new ones, but sends the signal to the
	// serving CMDs only StopDelay later, so that a load balancer (or
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
	// WatchWindow, when positive, keeps the replaced CMD running, and
	// accepting on the shared sockets, for this long after an upgrade's
	// cut-over: a new CMD that exits within the window is rolled back
	// (the old one serves on alone, reported as a rollback), and only
	// when the window passes does the old one get its SIGTERM. Upgrade
	// returns at the cut-over; UpgradeWith can wait for the window. One
	// CMD only: New refuses it with Workers above 1.
	WatchWindow time.Duration
	// Workers is the size of the pool: that many copies of CMD serve the
	// sockets side by side; 0 means 1. With more than one, an upgrade
	// replaces them rolling (MaxSurge) and a worker that exits outside an
	// upgrade is restarted (RestartDelay); with one, a CMD that exits
	// ends Run, as it always did.
	Workers int
	// MaxSurge is how many workers beyond Workers a roll-out may run at
	// once, counting the replaced ones still draining; 0 means 1. Only
	// for Workers above 1.
	MaxSurge int
	// RestartDelay is the first delay before a pool worker that exited is
	// started again; it doubles at every exit up to MaxRestartDelay, and
	// starts over once a worker has served for MaxRestartDelay. 0 means
	// DefaultRestartDelay and DefaultMaxRestartDelay.
	RestartDelay, MaxRestartDelay time.Duration
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

// pool reports whether the configuration runs a pool (Workers above 1).
func (c *Config) pool() bool { return c.Workers > 1 }

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
	if cfg.Workers < 0 || cfg.MaxSurge < 0 {
		return nil, fmt.Errorf("supervisor: Workers %d, MaxSurge %d: want 0 or more", cfg.Workers, cfg.MaxSurge)
	}
	if cfg.WatchWindow > 0 && cfg.pool() {
		return nil, errors.New("supervisor: WatchWindow needs one worker (a pool's roll-out stops an old worker only once its replacement is ready)")
	}
	cfg.Workers = max(cfg.Workers, 1)
	cfg.MaxSurge = max(cfg.MaxSurge, 1)
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = DefaultReadyTimeout
	}
	if cfg.Drain <= 0 {
		cfg.Drain = DefaultDrain
	}
	if cfg.ReadyHint == 0 {
		cfg.ReadyHint = DefaultReadyHint
	}
	if cfg.WatchInterval <= 0 {
		cfg.WatchInterval = DefaultWatchInterval
	}
	if cfg.RestartDelay <= 0 {
		cfg.RestartDelay = DefaultRestartDelay
	}
	if cfg.MaxRestartDelay <= 0 {
		cfg.MaxRestartDelay = DefaultMaxRestartDelay
	}
	cfg.MaxRestartDelay = max(cfg.MaxRestartDelay, cfg.RestartDelay)
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
		byPID:   make(map[int]*child),
		idle:    make(chan struct{}, 1),
		exits:   make(chan struct{}, 1),
		poke:    make(chan struct{}, 1),
		trigger: make(chan struct{}, 1),
		target:  cfg.Workers,
	}, nil
}

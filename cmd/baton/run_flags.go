package main

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/batonhq/baton/activation"
	"github.com/batonhq/baton/internal/sockurl"
	"github.com/batonhq/baton/internal/supervisor"
)

// controlGrace bounds how long baton run, once its CMD has exited, waits to
// answer a `baton reload` in flight.
const controlGrace = 5 * time.Second

// execReadyTimeout is --ready-timeout's default with --ready exec: how
// long a CMD that never sends READY=1 must keep running to count as
// ready. supervisor.DefaultReadyTimeout (90s) would hold every upgrade
// that long.
const execReadyTimeout = 2 * time.Second

const runUsage = `
baton run [--listen NAME=URL]... [--watch PATH] [--ready notify|exec]
          [--ready-timeout D] [--drain D] [--stop-delay D] [--max-draining N]
          [--watch-window D | --workers N [--max-surge N]] -- CMD [ARG]...

Holds the sockets and runs CMD with them, as systemd would: at fd 3, 4, ...
with LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID (CMD's own pid), and a
NOTIFY_SOCKET of baton's own. CMD is ready when it sends READY=1. Any
program that speaks these protocols works: Go with go-systemd or baton's
activation and notify packages, C with libsystemd's sd_listen_fds(3).

On SIGHUP, 'baton reload --pid PID', or a change of the --watch'ed file (a
rebuilt binary), baton starts a new CMD from the file on disk, waits for
its READY=1, then sends SIGTERM to the old one, which has --drain to exit
before SIGKILL. The sockets never close, so no connection is refused. A new
CMD that exits, is not ready in --ready-timeout or cannot be found is
stopped and the old one keeps serving; the reason is logged, sent to
systemd as STATUS= and returned to 'baton reload'.

Sockets: --listen NAME=URL binds tcp://HOST:PORT, udp://HOST:PORT or
unix:/PATH (unix:@NAME abstract). When systemd started baton with sockets
(LISTEN_FDS), baton passes those on; --listen NAME then selects the ones
named NAME, and --listen NAME=URL the one bound to URL, renamed NAME.

--max-draining N caps the old CMDs still draining: when an upgrade starts
and more than N would drain at once, the oldest are killed (SIGKILL, as
after --drain), logged "force-closed draining generation G (pid P):
MaxDraining=N" and reported in STATUS=. Their requests in flight are cut;
by default (0) there is no cap.

--watch-window D keeps the old CMD running after the cut-over, still
accepting on the shared sockets, for D: a new CMD that exits within D is
rolled back, the old one serving on alone, and that is logged ("upgrade
rolled back in the watch window"), sent to systemd as STATUS=, listed by
'baton status' (outcome rolled-back) and returned to 'baton reload
--wait-window' (exit status 1). Once D has passed, the old CMD gets its
SIGTERM. 'baton reload' returns at the cut-over unless given
--wait-window; an upgrade asked for during the window is refused ("upgrade
already in progress (watch window until T)"). By default (0) the old CMD
gets its SIGTERM at the cut-over. Not with --workers above 1.

--workers N runs a pool: N copies of CMD serve the same sockets, each
with its own LISTEN_PID and readiness (READY=1 from its own pid, or
--ready=exec). An upgrade replaces them rolling: each new worker is ready
before an old one gets its SIGTERM, and no more than N + --max-surge
(default 1) workers run at once, draining ones included. A new worker
that fails stops the roll-out, and the new workers it started are
stopped too, so that one version serves: the old workers not replaced
yet. The places of those replaced stay empty until the next reload or
resize (baton starts the file on disk: it cannot start the old version
again). A worker that exits outside an upgrade is started again after
100ms, doubling at each exit up to 30s (back to 100ms once a worker has
served 30s); that is logged and counted in 'baton status'. SIGTTIN adds
a worker and SIGTTOU removes the last one, as with gunicorn. A pool's
baton exits only when stopped, with its workers' first non-zero status.

--stop-delay D is a lame duck for load balancers and Kubernetes (the
preStop sleep): on SIGTERM or SIGINT baton tells systemd STOPPING=1 at
once and refuses upgrades, but CMD goes on serving for D before it gets
the signal. A second SIGTERM or SIGINT ends the delay and goes to CMD at
once. CMD itself is not told: to fail its health check during the delay,
give it a way to learn of the stop (or let the endpoint removal do it).

Readiness: with --ready notify (the default) CMD is ready when it sends
READY=1 to its NOTIFY_SOCKET from its own pid; after 5s without it baton
logs what it is waiting for ("waiting for READY=1", the pid, the socket).
--ready exec is for programs that never send READY=1: CMD is ready when it
is still running --ready-timeout after its start (2s by default with
--ready exec; READY=1 earlier still counts; --ready-timeout 1ms is ready
once exec'd). The trade-off: the
sockets are open before CMD starts, so nothing is refused while it starts
(connections wait in the backlog), but baton cannot tell a CMD that is
up from one still loading: the old CMD gets its SIGTERM after the
timeout whether or not the new one accepts yet, and a CMD that dies
after the timeout is found only by --watch-window. READY=1 is exact.

Under systemd (Type=notify) baton stays the main process: it sends READY=1
when the first CMD is ready (every worker of a pool), RELOADING=1 and
READY=1 around each upgrade, and forwards the serving CMD's (a pool's
first worker's) STATUS= and WATCHDOG= messages. As PID 1 of
a container it reaps orphans. SIGTERM, SIGINT and SIGQUIT go to the serving
CMD's pid; baton exits with its status (128+N for signal N). Each CMD runs
in a process group of its own: a terminal's Ctrl-C reaches it once, through
baton, and the SIGKILL after --drain reaches CMD's whole group, children
it started included. CMD's stdout and stderr are baton's; its stdin is
/dev/null; baton's own log goes to stderr.

  [Service]
  Type=notify
  ExecStart=/usr/local/bin/baton run --listen http=tcp://127.0.0.1:8080 -- /usr/local/bin/myserver
  ExecReload=/usr/local/bin/baton reload --pid $MAINPID
  KillMode=mixed

(KillMode=mixed: systemctl stop sends SIGTERM to baton alone, which passes
it on, so CMD gets it once; SIGKILL still reaches every process at the end
of TimeoutStopSec=.) 'baton units --run -- CMD [ARG]...' writes such a
unit, hardened, with its socket units.

--ready-timeout defaults to 90s, systemd's own TimeoutStartSec=, because
baton run starts programs of every kind; handoff's Config.ReadyTimeout
(5s) is for a Go successor, and baton units' --ready-timeout (10s) sets
TimeoutStartSec= (and, with --run, this flag).

Exit status: CMD's, 1 when the first CMD does not become ready, 2 for a bad
command line.

Linux only: on other systems baton run exits 1 at once ("baton run: not
supported on darwin: ...").`

type runCommand struct {
	io           stdio
	flags        *flagSet
	listen       listenFlags
	watch        string
	ready        string
	readyTimeout time.Duration
	drain        time.Duration
	stopDelay    time.Duration
	maxDraining  int
	window       time.Duration
	workers      int
	maxSurge     int
	poll         time.Duration
	quiet        bool
}

func newRunCmd(io stdio) command {
	c := &runCommand{io: io, flags: newFlagSet("run", runUsage, io.Stdout)}
	c.flags.Var(&c.listen, "listen", "a socket `NAME=URL` to bind (or NAME / NAME=URL to select when socket-activated); repeatable")
	c.flags.StringVar(&c.watch, "watch", "", "upgrade when this `file` changes (typically CMD's binary)")
	c.flags.StringVar(&c.ready, "ready", "notify", "readiness: notify (READY=1) or exec (running after --ready-timeout)")
	c.flags.DurationVar(&c.readyTimeout, "ready-timeout", supervisor.DefaultReadyTimeout, "how long a new CMD has to become ready; with --ready exec, how long it must keep running (default 2s then)")
	c.flags.DurationVar(&c.drain, "drain", supervisor.DefaultDrain, "how long a replaced CMD has between SIGTERM and SIGKILL")
	c.flags.DurationVar(&c.stopDelay, "stop-delay", 0, "on SIGTERM or SIGINT, keep CMD serving this long before passing the signal on")
	c.flags.IntVar(&c.maxDraining, "max-draining", 0, "at most this many replaced CMDs draining at once; the oldest are killed (0: no cap)")
	c.flags.DurationVar(&c.window, "watch-window", 0, "after an upgrade, keep the old CMD running this long and roll back to it if the new one exits (0: none)")
	c.flags.IntVar(&c.workers, "workers", 1, "run this many copies of CMD on the same sockets, upgraded rolling")
	c.flags.IntVar(&c.maxSurge, "max-surge", 1, "with --workers: at most this many workers beyond N during a roll-out")
	c.flags.DurationVar(&c.poll, "watch-interval", supervisor.DefaultWatchInterval, "how often --watch polls")
	c.flags.BoolVar(&c.quiet, "quiet", false, "log only warnings and errors")
	return c
}

// listenFlags collects --listen values.
type listenFlags []listenSpec

type listenSpec struct {
	raw  string // as given
	name string
	addr *sockurl.Addr // nil: select by name
	err  error         // what is wrong with raw: config reports it
}

func (l *listenFlags) String() string { return "" }

// Set records v; a bad one is reported by config, in the words baton
// units uses for the same mistake (parseListen), rather than the flag
// package's.
func (l *listenFlags) Set(v string) error {
	spec, err := parseListen(v)
	spec.err = err
	*l = append(*l, spec)
	return nil
}

// parseListen parses a --listen value, NAME or NAME=URL, for baton run
// and baton units alike: one mistake, one message.
func parseListen(v string) (listenSpec, error) {
	name, u, hasURL := strings.Cut(v, "=")
	spec := listenSpec{raw: v, name: name}
	if !hasURL && (strings.Contains(v, "://") || strings.HasPrefix(v, "unix:")) {
		return spec, fmt.Errorf("--listen %q: want NAME=URL, a name first (http=%s)", v, v)
	}
	if err := activation.CheckName(name); err != nil {
		return spec, fmt.Errorf("--listen %q: %w", v, err)
	}
	if hasURL {
		a, err := sockurl.Parse(u)
		if err != nil {
			return spec, fmt.Errorf("--listen %q: %w", v, err)
		}
		spec.addr = &a
	}
	return spec, nil
}

// errListenNoURL is the message for a --listen NAME without =URL where a
// URL is needed.
func errListenNoURL(v, why string) error {
	return fmt.Errorf("--listen %q: want NAME=URL (%s)", v, why)
}

// config checks the flags and returns the supervisor's configuration.
func (c *runCommand) config(argv []string) (supervisor.Config, error) {
	var cfg supervisor.Config
	for _, l := range c.listen {
		if l.err != nil {
			return cfg, usagef("run", "%v", l.err)
		}
	}
	switch c.ready {
	case "notify":
	case "exec":
		cfg.Ready = supervisor.ReadyExec
		explicit := false
		c.flags.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "ready-timeout" })
		if !explicit {
			c.readyTimeout = execReadyTimeout
		}
	default:
		return cfg, usagef("run", "--ready=%q: want notify or exec", c.ready)
	}
	switch {
	case c.readyTimeout <= 0 || c.drain <= 0 || c.poll <= 0:
		return cfg, usagef("run", "durations must be positive")
	case c.stopDelay < 0:
		return cfg, usagef("run", "--stop-delay %s: want 0 or more", c.stopDelay)
	case c.maxDraining < 0:
		return cfg, usagef("run", "--max-draining %d: want 0 (no cap) or more", c.maxDraining)
	case c.window < 0:
		return cfg, usagef("run", "--watch-window %s: want 0 or more", c.window)
	case c.workers < 1 || c.maxSurge < 1:
		return cfg, usagef("run", "--workers %d --max-surge %d: want 1 or more", c.workers, c.maxSurge)
	case c.window > 0 && c.workers > 1:
		return cfg, usagef("run", "--watch-window with --workers %d: a watch window keeps one old CMD (a pool's roll-out stops an old worker only once its replacement is ready)", c.workers)
	}
	cfg.Args = argv
	cfg.ReadyTimeout, cfg.Drain, cfg.StopDelay, cfg.MaxDraining = c.readyTimeout, c.drain, c.stopDelay, c.maxDraining
	cfg.WatchWindow, cfg.Workers, cfg.MaxSurge = c.window, c.workers, c.maxSurge
	cfg.Watch, cfg.WatchInterval = c.watch, c.poll
	cfg.ReapOrphans = true
	return cfg, nil
}

var _ flag.Value = (*listenFlags)(nil)

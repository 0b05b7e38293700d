package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/batonhq/baton/activation"
	"github.com/batonhq/baton/internal/control"
	"github.com/batonhq/baton/internal/sockurl"
	"github.com/batonhq/baton/internal/supervisor"
	"github.com/batonhq/baton/notify"
)

// controlGrace bounds how long baton run, once its CMD has exited, waits to
// answer a `baton reload` in flight.
const controlGrace = 5 * time.Second

const runUsage = `
baton run [--listen NAME=URL]... [--watch PATH] [--ready notify|exec]
          [--ready-timeout D] [--drain D] [--stop-delay D] [--max-draining N]
          -- CMD [ARG]...

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

--stop-delay D is a lame duck for load balancers and Kubernetes (the
preStop sleep): on SIGTERM or SIGINT baton tells systemd STOPPING=1 at
once and refuses upgrades, but CMD goes on serving for D before it gets
the signal. A second SIGTERM or SIGINT ends the delay and goes to CMD at
once. CMD itself is not told: to fail its health check during the delay,
give it a way to learn of the stop (or let the endpoint removal do it).

--ready=exec is for programs that do not send READY=1: CMD is ready when it
is still running --ready-timeout after its start (pick a short one).

Under systemd (Type=notify) baton stays the main process: it sends READY=1
when the first CMD is ready, RELOADING=1 and READY=1 around each upgrade,
and forwards the serving CMD's STATUS= and WATCHDOG= messages. As PID 1 of
a container it reaps orphans. SIGTERM, SIGINT and SIGQUIT go to the serving
CMD's pid; baton exits with its status (128+N for signal N). Each CMD runs
in a process group of its own: a terminal's Ctrl-C reaches it once, through
baton, and the SIGKILL after --drain reaches CMD's whole group, children
it started included. CMD's stdout and stderr are baton's; its stdin is
/dev/null; baton's own log goes to stderr.

  [Service]
  Type=notify
  ExecStart=/usr/bin/baton run --listen http=tcp://127.0.0.1:8080 -- /usr/bin/myserver
  ExecReload=/usr/bin/baton reload --pid $MAINPID
  KillMode=mixed

(KillMode=mixed: systemctl stop sends SIGTERM to baton alone, which passes
it on, so CMD gets it once; SIGKILL still reaches every process at the end
of TimeoutStopSec=.)

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
	poll         time.Duration
	quiet        bool
}

func newRunCmd(io stdio) command {
	c := &runCommand{io: io, flags: newFlagSet("run", runUsage, io.Stdout)}
	c.flags.Var(&c.listen, "listen", "a socket `NAME=URL` to bind (or NAME / NAME=URL to select when socket-activated); repeatable")
	c.flags.StringVar(&c.watch, "watch", "", "upgrade when this `file` changes (typically CMD's binary)")
	c.flags.StringVar(&c.ready, "ready", "notify", "readiness: notify (READY=1) or exec (running after --ready-timeout)")
	c.flags.DurationVar(&c.readyTimeout, "ready-timeout", supervisor.DefaultReadyTimeout, "how long a new CMD has to become ready")
	c.flags.DurationVar(&c.drain, "drain", supervisor.DefaultDrain, "how long a replaced CMD has between SIGTERM and SIGKILL")
	c.flags.DurationVar(&c.stopDelay, "stop-delay", 0, "on SIGTERM or SIGINT, keep CMD serving this long before passing the signal on")
	c.flags.IntVar(&c.maxDraining, "max-draining", 0, "at most this many replaced CMDs draining at once; the oldest are killed (0: no cap)")
	c.flags.DurationVar(&c.poll, "watch-interval", supervisor.DefaultWatchInterval, "how often --watch polls")
	c.flags.BoolVar(&c.quiet, "quiet", false, "log only warnings and errors")
	return c
}

// listenFlags collects --listen values.
type listenFlags []listenSpec

type listenSpec struct {
	name string
	addr *sockurl.Addr // nil: select by name
}

func (l *listenFlags) String() string { return "" }

func (l *listenFlags) Set(v string) error {
	name, u, hasURL := strings.Cut(v, "=")
	if err := activation.CheckName(name); err != nil {
		return err
	}
	spec := listenSpec{name: name}
	if hasURL {
		a, err := sockurl.Parse(u)
		if err != nil {
			return err
		}
		spec.addr = &a
	}
	*l = append(*l, spec)
	return nil
}

func (c *runCommand) Run(ctx context.Context, args []string) error {
	if err := c.flags.parse(args); err != nil {
		return err
	}
	argv := c.flags.Args()
	if len(argv) == 0 {
		return usagef("run", "no command: want baton run [FLAGS] -- CMD [ARG]...")
	}
	var mode supervisor.ReadyMode
	switch c.ready {
	case "notify":
	case "exec":
		mode = supervisor.ReadyExec
	default:
		return usagef("run", "--ready=%q: want notify or exec", c.ready)
	}
	if c.readyTimeout <= 0 || c.drain <= 0 || c.poll <= 0 {
		return usagef("run", "durations must be positive")
	}
	if c.stopDelay < 0 {
		return usagef("run", "--stop-delay %s: want 0 or more", c.stopDelay)
	}
	if c.maxDraining < 0 {
		return usagef("run", "--max-draining %d: want 0 (no cap) or more", c.maxDraining)
	}
	level := slog.LevelInfo
	if c.quiet {
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewTextHandler(c.io.Stderr, &slog.HandlerOptions{Level: level})).With("from", "baton")

	// The manager's socket is baton's; CMD gets its own (the supervisor
	// replaces NOTIFY_SOCKET in CMD's environment).
	mgr, err := notify.FromEnv()
	if err != nil {
		log.Warn("not notifying the service manager", "err", err)
	}
	defer mgr.Close()

	socks, closeSocks, err := c.sockets()
	if err != nil {
		return err
	}
	defer closeSocks()
	for _, sk := range socks {
		log.Info("socket", "name", sk.Name, "addr", sockAddr(sk.File))
	}

	pid1 := os.Getpid() == 1
	if !pid1 {
		// Orphans of CMD's own children come to baton, not to init.
		if err := setSubreaper(); err != nil {
			log.Warn("child subreaper", "err", err)
		}
	}
	cfg := supervisor.Config{
		Args:          argv,
		Sockets:       socks,
		Ready:         mode,
		ReadyTimeout:  c.readyTimeout,
		Drain:         c.drain,
		StopDelay:     c.stopDelay,
		MaxDraining:   c.maxDraining,
		Watch:         c.watch,
		WatchInterval: c.poll,
		ReapOrphans:   true,
		Logger:        log,
	}
	if mgr.Enabled() {
		cfg.Manager = mgr.Send
	}
	sup, err := supervisor.New(cfg)
	if err != nil {
		return err
	}

	// main cancels ctx on SIGINT and SIGTERM; baton run forwards them
	// instead, so it listens itself, and its Run gets a context of its own.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()

	// supervisor.ErrStopping is control.ErrStopping: an upgrade a stop
	// abandoned is answered "stopping".
	started := time.Now()
	srv, err := control.ListenStatus(func(ctx context.Context) (int, error) {
		pid, err := sup.Upgrade(ctx)
		if errors.Is(err, supervisor.ErrInProgress) {
			return 0, fmt.Errorf("%w: %w", control.ErrInProgress, err)
		}
		return pid, err
	}, func(context.Context) any {
		return runStatus(sup, started, argv[0], socks)
	})
	if err != nil {
		// baton reload would not reach this process, or would reach the
		// process that took the name.
		return fmt.Errorf("baton run: %w", err)
	}
	// Answer the request a stop abandoned before exiting, so that
	// `baton reload` learns why.
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), controlGrace)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()

	done := make(chan error, 1)
	go func() { done <- sup.Run(runCtx) }()
	for {
		select {
		case err := <-done:
			return c.exit(err, log)
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				sup.Trigger()
				continue
			}
			// The supervisor logs when it delays the signal (--stop-delay).
			log.Info("stop", "signal", sig.String(), "pid", sup.PID())
			if err := sup.Stop(sig); err != nil {
				cancel()
			}
		}
	}
}

// exit turns Run's outcome into baton's: CMD's exit status.
func (c *runCommand) exit(err error, log *slog.Logger) error {
	var ee *supervisor.ExitError
	var se *supervisor.StartError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee):
		log.Info("exiting with the serving process's status", "pid", ee.PID, "status", ee.Status.String())
		return &exitError{code: ee.Status.ShellCode()}
	case errors.As(err, &se):
		return fmt.Errorf("first start: %w", err)
	}
	return err
}

// sockets returns the sockets for CMD: inherited from systemd, or bound
// here. close releases them.
func (c *runCommand) sockets() ([]supervisor.Socket, func(), error) {
	set, err := activation.Receive()
	switch {
	case errors.Is(err, activation.ErrNotActivated):
		return c.bind()
	case err != nil:
		return nil, nil, err
	}
	socks, err := c.selectInherited(set)
	if err != nil {
		_ = set.Close()
		return nil, nil, err
	}
	return socks, func() {
		for _, s := range socks {
			_ = s.File.Close()
		}
		_ = set.Close()
	}, nil
}

// selectInherited applies --listen to the inherited fds.
func (c *runCommand) selectInherited(set *activation.Set) ([]supervisor.Socket, error) {
	if len(c.listen) == 0 {
		var socks []supervisor.Socket
		for _, f := range set.Files() {
			fs, err := set.Take(f.Name) // "" when taken with an earlier name
			if err != nil {
				continue
			}
			for _, t := range fs {
				socks = append(socks, supervisor.Socket{Name: t.Name, File: t.File})
			}
		}
		return socks, nil
	}
	var socks []supervisor.Socket
	for _, l := range c.listen {
		if l.addr == nil {
			fs, err := set.Take(l.name)
			if err != nil {
				return nil, fmt.Errorf("--listen %s: %w", l.name, err)
			}
			for _, f := range fs {
				socks = append(socks, supervisor.Socket{Name: l.name, File: f.File})
			}
			continue
		}
		found := false
		for _, f := range set.Files() {
			if f.Addr == nil || !sameAddr(*l.addr, f.Addr) {
				continue
			}
			fs, err := set.Take(f.Name)
			if err != nil {
				return nil, err
			}
			for _, t := range fs {
				if t.FD == f.FD {
					socks = append(socks, supervisor.Socket{Name: l.name, File: t.File})
					found = true
				} else {
					_ = t.File.Close()
				}
			}
			break
		}
		if !found {
			return nil, fmt.Errorf("--listen %s=%s: no inherited socket is bound there (have %v)", l.name, l.addr, set.Files())
		}
	}
	return socks, nil
}

// sameAddr reports whether the inherited socket's address is u.
func sameAddr(u sockurl.Addr, a net.Addr) bool {
	if u.Network == "unix" {
		return a.Network() == "unix" && a.String() == u.Address
	}
	if u.Stream() != strings.HasPrefix(a.Network(), "tcp") {
		return false
	}
	want, err := net.ResolveTCPAddr("tcp", u.Address) // numeric: no lookup
	if err != nil {
		return false
	}
	got, err := net.ResolveTCPAddr("tcp", a.String())
	if err != nil {
		return false
	}
	return want.Port == got.Port && (want.IP == nil || want.IP.Equal(got.IP) ||
		(want.IP.IsUnspecified() && got.IP.IsUnspecified()))
}

// bind creates the --listen sockets.
func (c *runCommand) bind() ([]supervisor.Socket, func(), error) {
	var (
		socks   []supervisor.Socket
		closers []func()
	)
	release := func() {
		for _, f := range closers {
			f()
		}
	}
	for _, l := range c.listen {
		if l.addr == nil {
			release()
			return nil, nil, usagef("run", "--listen %s: want NAME=URL (not started with sockets)", l.name)
		}
		f, closeFn, err := bindOne(*l.addr)
		if err != nil {
			release()
			return nil, nil, fmt.Errorf("--listen %s=%s: %w", l.name, l.addr, err)
		}
		socks = append(socks, supervisor.Socket{Name: l.name, File: f})
		closers = append(closers, closeFn)
	}
	return socks, release, nil
}

// bindOne binds a socket and returns a file for CMD; closeFn closes both
// (and removes a unix socket's path, which baton created).
func bindOne(a sockurl.Addr) (*os.File, func(), error) {
	type filer interface {
		File() (*os.File, error)
		Close() error
	}
	var s filer
	var err error
	if a.Network == "unix" {
		removeStale(a.Address)
	}
	if a.Stream() {
		var ln net.Listener
		ln, err = net.Listen(a.Network, a.Address)
		if err == nil {
			s = ln.(filer)
		}
	} else {
		var pc net.PacketConn
		pc, err = net.ListenPacket(a.Network, a.Address)
		if err == nil {
			s = pc.(filer)
		}
	}
	if err != nil {
		return nil, nil, err
	}
	f, err := s.File()
	if err != nil {
		_ = s.Close()
		return nil, nil, err
	}
	return f, func() { _ = f.Close(); _ = s.Close() }, nil
}

// removeStale removes a unix socket path that nothing listens on any more
// (left by a baton that was killed), so that binding it again works. A
// path that is not a socket, or that answers, is left alone.
func removeStale(path string) {
	if strings.HasPrefix(path, "@") {
		return
	}
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Type() != os.ModeSocket {
		return
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		_ = c.Close()
		return
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		_ = os.Remove(path)
	}
}

// sockAddr describes a socket file for the log.
func sockAddr(f *os.File) string {
	st := socketStatus(supervisor.Socket{File: f})
	if st.Addr == "" {
		return f.Name()
	}
	return st.Kind + "://" + st.Addr
}

var _ flag.Value = (*listenFlags)(nil)

//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/batonhq/baton/bench/control"
	"github.com/batonhq/baton/bench/load"
	"github.com/batonhq/baton/bench/tlscert"
)

// peer is one way of serving the shared handler and upgrading it.
type peer struct {
	name string
	// server is the binary that serves requests (the floor is measured on
	// it); selfArgs start it standalone, binding addr itself.
	server   string
	selfArgs func(addr string) []string
	// args start the peer as deployed for the upgrade scenarios: argv[0] is
	// a binary name in the bin directory.
	args func(b *bins, addr, dir string) []string
	// trigger fires one upgrade; inst is the running peer.
	trigger func(b *bins, inst *instance) control.Trigger
	// restart marks the naive stop-and-start peer: there is no handover
	// and no old generation.
	restart bool
	// pidfile names the peer's pid file in its directory, if it has one.
	pidfile string
	// serial marks a peer that refuses an upgrade while an old generation
	// is alive: the soak waits for the old one to exit before the next.
	serial bool
	// upgrades is false for the plain baseline.
	upgrades bool
	needs    []string // binaries this peer needs
	// subcommand, when set, is a baton subcommand this peer needs
	// (checked with `baton help NAME`).
	subcommand string
	// protocols marks a peer that runs the protocol scenarios (TLS,
	// HTTP/2, /events); tlsArgs are the arguments that make it serve TLS.
	protocols bool
	tlsArgs   func(cert, key string) []string
	// wave marks a peer that runs the reconnect-wave scenarios; waveOnly
	// one that runs nothing else.
	wave, waveOnly bool
}

// tlsFlags are the TLS arguments of the peers that have them.
func tlsFlags(cert, key string) []string { return []string{"-tls-cert", cert, "-tls-key", key} }

// supportsTLS tells whether the peer's server binary has a -tls-cert flag
// (from its -h output), for a checkout in which it is not in yet.
func (p *peer) supportsTLS(b *bins) error {
	if p.tlsArgs == nil {
		return fmt.Errorf("%s has no TLS", p.name)
	}
	out, _ := exec.Command(b.path(p.server), "-h").CombinedOutput() // -h exits 0 or 2; the text is what matters
	if !strings.Contains(string(out), "-tls-cert") {
		return fmt.Errorf("%w: %s has no -tls-cert flag", errMissing, b.path(p.server))
	}
	return nil
}

type bins struct {
	dir string
}

func (b *bins) path(name string) string { return filepath.Join(b.dir, name) }

// debugLog is "-log-level debug" when the binary has that flag (its -h),
// which makes examples/http log each upgrade's stages; nothing otherwise.
func (b *bins) debugLog(name string) []string {
	out, _ := exec.Command(b.path(name), "-h").CombinedOutput() // -h exits 0 or 2; the text is what matters
	if !strings.Contains(string(out), "-log-level") {
		return nil
	}
	return []string{"-log-level", "debug"}
}

func (b *bins) has(name string) bool {
	st, err := os.Stat(b.path(name))
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// peers lists every peer, in table order.
func peers() []*peer {
	listen := func(addr string) []string { return []string{"-listen", addr} }
	return []*peer{
		{
			name:     "baton",
			server:   "http",
			selfArgs: listen,
			args: func(b *bins, addr, dir string) []string {
				return append([]string{"http", "-listen", addr, "-pidfile", filepath.Join(dir, "http.pid")}, b.debugLog("http")...)
			},
			trigger: func(_ *bins, inst *instance) control.Trigger {
				return control.Signal{Sig: syscall.SIGHUP, PidFile: filepath.Join(inst.dir, "http.pid")}
			},
			pidfile:   "http.pid",
			upgrades:  true,
			needs:     []string{"http"},
			protocols: true,
			tlsArgs:   tlsFlags,
			wave:      true,
		},
		{
			name:     "baton-nospread",
			server:   "http",
			selfArgs: listen,
			args: func(b *bins, addr, dir string) []string {
				return append([]string{"http", "-listen", addr, "-pidfile", filepath.Join(dir, "http.pid"), "-spread-window", "-1s"}, b.debugLog("http")...)
			},
			trigger: func(_ *bins, inst *instance) control.Trigger {
				return control.Signal{Sig: syscall.SIGHUP, PidFile: filepath.Join(inst.dir, "http.pid")}
			},
			pidfile:  "http.pid",
			upgrades: true,
			needs:    []string{"http"},
			tlsArgs:  tlsFlags,
			wave:     true,
			waveOnly: true,
		},
		{
			name:     "baton-reload",
			server:   "http",
			selfArgs: listen,
			args: func(b *bins, addr, dir string) []string {
				return append([]string{"http", "-listen", addr, "-pidfile", filepath.Join(dir, "http.pid")}, b.debugLog("http")...)
			},
			trigger: func(b *bins, inst *instance) control.Trigger {
				return control.Command{Args: []string{b.path("baton"), "reload", "--pid", "{pid}"}, PidFile: filepath.Join(inst.dir, "http.pid")}
			},
			pidfile:    "http.pid",
			upgrades:   true,
			needs:      []string{"http", "baton"},
			subcommand: "reload",
		},
		{
			name:     "baton-run",
			server:   "gosystemd",
			selfArgs: listen,
			args: func(b *bins, addr, _ string) []string {
				return []string{"baton", "run", "--listen", "http=tcp://" + addr, "--", b.path("gosystemd")}
			},
			trigger: func(_ *bins, inst *instance) control.Trigger {
				return control.Signal{Sig: syscall.SIGHUP, Pid: inst.supervisor()}
			},
			upgrades:   true,
			needs:      []string{"baton", "gosystemd"},
			subcommand: "run",
		},
		{
			name:     "tableflip",
			server:   "tableflip",
			selfArgs: listen,
			args: func(_ *bins, addr, dir string) []string {
				return []string{"tableflip", "-listen", addr, "-pid-file", filepath.Join(dir, "tableflip.pid")}
			},
			serial: true,
			trigger: func(_ *bins, inst *instance) control.Trigger {
				return control.Signal{Sig: syscall.SIGHUP, PidFile: filepath.Join(inst.dir, "tableflip.pid")}
			},
			pidfile:   "tableflip.pid",
			upgrades:  true,
			needs:     []string{"tableflip"},
			protocols: true,
			tlsArgs:   tlsFlags,
			wave:      true,
		},
		{
			name:     "naive",
			server:   "plain",
			selfArgs: listen,
			args:     func(_ *bins, addr, _ string) []string { return []string{"plain", "-listen", addr} },
			trigger: func(_ *bins, inst *instance) control.Trigger {
				return control.Func(inst.restart)
			},
			restart:  true,
			upgrades: true,
			needs:    []string{"plain"},
		},
		{
			name:     "plain",
			server:   "plain",
			selfArgs: listen,
			args:     func(_ *bins, addr, _ string) []string { return []string{"plain", "-listen", addr} },
			needs:    []string{"plain"},
		},
	}
}

// instance is one running peer.
type instance struct {
	b    *bins
	argv []string
	log  *os.File
	cmd  *exec.Cmd
	addr string
	dir  string      // the peer's pid files
	tls  *tls.Config // the clients' TLS configuration; nil for plain
}

// startOpts are the per-run choices of start; the zero value is plain.
type startOpts struct {
	// cert, when set, makes the peer serve TLS with it; tls is the
	// clients' configuration for it.
	cert *tlscert.Pair
}

// start runs the peer's first process in a process group of its own.
func start(ctx context.Context, b *bins, p *peer, addr, dir, logPath string, opts startOpts) (*instance, error) {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	inst := &instance{b: b, argv: p.args(b, addr, dir), log: lf, addr: addr, dir: dir}
	if opts.cert != nil {
		inst.argv = append(inst.argv, p.tlsArgs(opts.cert.CertFile, opts.cert.KeyFile)...)
		inst.tls = opts.cert.Client.Clone()
		inst.tls.NextProtos = []string{"http/1.1"}
	}
	if err := inst.spawn(); err != nil {
		lf.Close()
		return nil, err
	}
	if err := waitServing(ctx, addr, inst.tls, 10*time.Second); err != nil {
		inst.kill()
		return nil, fmt.Errorf("%s not serving: %w (log %s)", p.name, err, logPath)
	}
	return inst, nil
}

func (inst *instance) spawn() error {
	cmd := exec.Command(inst.b.path(inst.argv[0]), inst.argv[1:]...)
	cmd.Stdout, cmd.Stderr = inst.log, inst.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", inst.argv[0], err)
	}
	inst.cmd = cmd
	return nil
}

// supervisor is the pid of the first process (baton run's own pid).
func (inst *instance) supervisor() int { return inst.cmd.Process.Pid }

// restart is the naive upgrade: SIGTERM, wait for the exit, start again.
func (inst *instance) restart(_ context.Context, _ int) (int, error) {
	old := inst.cmd.Process.Pid
	if err := inst.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return old, fmt.Errorf("stop: %w", err)
	}
	_ = inst.cmd.Wait() // exit status of a stopped server: not an error here
	return old, inst.spawn()
}

// kill ends every process of the peer: its process group, the groups its
// first process's children lead (baton run starts each CMD in a group of
// its own) and the pids given (generations that may have left the group),
// then reaps what it can.
func (inst *instance) kill(pids ...int) {
	if inst.cmd != nil && inst.cmd.Process != nil {
		for _, kid := range childrenOf(inst.cmd.Process.Pid) {
			_ = syscall.Kill(-kid, syscall.SIGKILL) // ESRCH when not a leader
			_ = syscall.Kill(kid, syscall.SIGKILL)
		}
		_ = syscall.Kill(-inst.cmd.Process.Pid, syscall.SIGKILL)
	}
	for _, pid := range pids {
		if pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if inst.cmd != nil {
		_ = inst.cmd.Wait() // killed on purpose, or already reaped
	}
	reapAll()
	inst.log.Close()
}

// childrenOf lists the pids whose parent is ppid, from /proc.
func childrenOf(ppid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var kids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) >= 2 && f[1] == strconv.Itoa(ppid) {
			kids = append(kids, pid)
		}
	}
	return kids
}

// reapAll collects every exited child (orphaned generations re-parented to
// this process, a child subreaper).
func reapAll() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}

// waitServing polls addr until it answers 200 (over TLS when tc is set).
func waitServing(ctx context.Context, addr string, tc *tls.Config, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		if _, err := probe(addr, tc, time.Second); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// probe sends one request on a fresh connection (TLS when tc is set) and
// returns the answer.
func probe(addr string, tc *tls.Config, timeout time.Duration) (load.Response, error) {
	var c net.Conn
	var err error
	if tc != nil {
		c, err = tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", addr, tc)
	} else {
		c, err = net.DialTimeout("tcp", addr, timeout)
	}
	if err != nil {
		return load.Response{}, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(load.AppendRequest(nil, "/", true)); err != nil {
		return load.Response{}, err
	}
	return load.ReadResponse(newReader(c))
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return "127.0.0.1:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), nil
}

var errMissing = errors.New("binary missing")

func (p *peer) missing(b *bins) error {
	for _, n := range p.needs {
		if !b.has(n) {
			return fmt.Errorf("%w: %s", errMissing, b.path(n))
		}
	}
	if p.subcommand != "" {
		if out, err := exec.Command(b.path("baton"), "help", p.subcommand).CombinedOutput(); err != nil {
			return fmt.Errorf("%w: baton %s (%s)", errMissing, p.subcommand, lastLine(string(out)))
		}
	}
	return nil
}

package handoff

import (
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The traps: mistakes that cost requests or an upgrade without a word.
// Each says so in the log, within seconds of the moment it matters:
//
//   - a listener from Listen that no server registered with Serve uses
//     (srv.Serve(ln) instead of up.Serve): at Ready;
//   - Serve without Ready: the servers wait for Ready, and every request
//     hangs; after ReadyHint;
//   - an executable in Go's build cache (`go run`): an upgrade starts the
//     same build again, not the changed source, and fails once `go run`
//     has exited and removed it; at New;
//   - a terminal's foreground (a shell): at New (see trapTerminal);
//   - an upgrade that fails, whoever asked for it: logged by the server
//     (SIGHUP, `baton reload`).
//
// They are checks beside the lifecycle, not part of it: each is called
// from one line where its moment is.

// readyHint is how long Serve waits for Ready before it logs that the
// servers are not started yet (a var for tests).
var readyHint = 3 * time.Second

// traps is what the checks remember.
type traps struct {
	ready     atomic.Bool // Ready was called
	readyOnce sync.Once   // the Serve-without-Ready check is started once

	mu        sync.Mutex
	listeners []namedListener // from Listen, for the check at Ready
}

type namedListener struct {
	name string
	ln   net.Listener
}

// trapsAtStart runs the checks that New can make: the executable and the
// terminal.
func (u *Upgrader) trapsAtStart() {
	if goRunBuild(u.exe) {
		u.log.Warn("the executable is a temporary build of `go run`: an upgrade (SIGHUP, baton reload) starts this same build again, not your changed source, and fails once `go run` has exited and removed it; build it with `go build` and run the binary",
			"exe", u.exe)
	}
	if u.gen == 1 && foreground() {
		u.trapTerminal()
	}
}

// trapTerminal warns a generation started in a terminal's foreground.
// The shell waits for this process only: after the first upgrade it
// exits, the shell prints its prompt, and Ctrl-C (SIGINT to the
// terminal's foreground group) no longer reaches the serving generation,
// which goes on in the background. Keeping this process alive as a
// stand-in that forwards signals would keep the old generation's memory
// for the whole life of the service and make it a supervisor, which is
// what `baton run` already is; so a warning says how to stop it.
func (u *Upgrader) trapTerminal() {
	stop := "kill -TERM PID (the pid changes at each upgrade: Config.PIDFile keeps it)"
	if u.cfg.PIDFile != "" {
		stop = "baton stop --pidfile " + u.cfg.PIDFile + " (or kill -TERM $(cat " + u.cfg.PIDFile + "))"
	}
	u.log.Warn("running in a terminal's foreground: after the first upgrade the shell gets its prompt back and Ctrl-C no longer stops the server, which goes on in the background; stop it with "+stop+", or run it under systemd or `baton run`",
		"pid", strconv.Itoa(os.Getpid()))
}

// goRunBuild reports whether exe is where `go run` builds: a directory
// named exe in a go-build work directory (go-buildNNN/b001/exe/NAME).
// Test binaries (go-buildNNN/b001/PKG.test) are not.
func goRunBuild(exe string) bool {
	i := strings.Index(exe, "/go-build")
	return i >= 0 && strings.Contains(exe[i:], "/exe/")
}

// trapListen remembers a listener Listen returned.
func (u *Upgrader) trapListen(name string, ln net.Listener) {
	u.traps.mu.Lock()
	u.traps.listeners = append(u.traps.listeners, namedListener{name, ln})
	u.traps.mu.Unlock()
}

// trapsAtReady runs when Ready is called: it logs the listeners from
// Listen that no registered server serves. Only servers made by HTTP say
// which listener they serve: with another kind registered, or one serving
// a listener Listen did not return (a wrapper: tls.NewListener,
// netutil.LimitListener), nothing is said.
func (u *Upgrader) trapsAtReady() {
	u.traps.ready.Store(true)
	u.mu.Lock()
	servers := append([]Server(nil), u.servers...)
	u.mu.Unlock()
	u.traps.mu.Lock()
	defer u.traps.mu.Unlock()
	ours := map[net.Listener]bool{}
	for _, l := range u.traps.listeners {
		ours[l.ln] = true
	}
	served := map[net.Listener]bool{}
	for _, s := range servers {
		h, ok := s.(*HTTPServer)
		if !ok || !ours[h.ln] {
			return
		}
		served[h.ln] = true
	}
	for _, l := range u.traps.listeners {
		if !served[l.ln] {
			u.log.Warn("a socket from Listen is not served by a server given to Serve: connections accepted outside Serve (srv.Serve(ln)) are not drained and are cut at the upgrade; serve it with up.Serve(handoff.HTTP(srv, ln))",
				"name", l.name, "addr", l.ln.Addr().String(), "generation", u.gen)
		}
	}
}

// trapServe runs at each Serve: once, it starts a wait of readyHint,
// after which it logs that Ready has not been called, if so.
func (u *Upgrader) trapServe() {
	u.traps.readyOnce.Do(func() {
		u.wg.Go(func() {
			t := time.NewTimer(readyHint)
			defer t.Stop()
			select {
			case <-t.C:
			case <-u.ctx.Done():
				return
			}
			if !u.traps.ready.Load() {
				u.log.Warn("servers given to Serve are not started until Ready is called: connections wait in the socket's backlog; call up.Ready() after Serve",
					"waited", readyHint.String(), "generation", u.gen)
			}
		})
	})
}

// logRequested logs the outcome of an upgrade asked for through the
// control socket (`baton reload`), as the SIGHUP handler does for its
// own: the asker gets the error, and the service's log has it too.
func (u *Upgrader) logRequested(pid int, err error) (int, error) {
	switch {
	case errors.Is(err, ErrStopping):
		u.log.Info("upgrade asked by baton reload: abandoned, stopping", "err", err)
	case err != nil:
		u.log.Error("upgrade asked by baton reload", "err", err)
	default:
		u.log.Info("upgraded", "pid", pid, "asked by", "baton reload")
	}
	return pid, err
}

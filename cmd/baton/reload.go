package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/batonhq/baton/internal/control"
)

const reloadUsage = `
baton reload (--pid PID | --pidfile FILE) [--wait-window] [--timeout D] [--json]

Asks a running baton process (a server built with package handoff, or
'baton run') to upgrade, and waits for the outcome. Exits 0 and prints the
pid now serving when the new generation is ready; otherwise exits non-zero
with the reason: the new process exited with status N, was not ready in
time, its binary is missing, an upgrade is already in progress, permission
denied (only the process's own user and root may ask), or no baton process
at that pid. The old generation keeps serving in every failure.

With a watch window (baton run --watch-window D) the new generation takes
over but the old one stays until D has passed, to serve again if the new
one exits within D. baton reload returns at the cut-over; with
--wait-window it waits for the window's end: exit 0 when it passed, 1
when the new generation was rolled back ("rolled back in the watch
window: new pid N ended (exit status S) T after the cut-over; pid O serves
again"). A server without a watch window answers at the cut-over either
way.

One outcome is not a failure: when the service stops during the upgrade
('systemctl stop' during 'systemctl reload'), the upgrade is abandoned,
and baton reload prints "upgrade abandoned: the service is stopping" on
stderr and exits 0, so that the stopped unit ends inactive, not failed.
On SIGTERM (systemd sends it to ExecReload= on stop) baton reload goes on
waiting for the answer, within --timeout; a server that then exits
without one, or is gone already, was stopping too. On SIGINT (Ctrl-C) it stops waiting and
exits 130: the upgrade goes on in the server, and its outcome is in the
service's log.

Made for ExecReload=, so that 'systemctl reload' waits for the upgrade and
fails when it fails:

  ExecReload=/usr/local/bin/baton reload --pid $MAINPID

systemctl reload itself only says that the job failed ("Job for
NAME.service failed"); the reason baton reload printed is in 'systemctl
status NAME' and 'journalctl -u NAME'.

Exit status: 0 serving, or the upgrade abandoned because the service is
stopping; 1 upgrade failed or rolled back (the old generation serves); 2 bad command
line; 3 upgrade already in progress; 4 permission denied; 5 no baton
process there, or no outcome (not within --timeout, or the process
exited without answering); 130 interrupted (SIGINT), the upgrade goes on.

With --json, stdout has {"pid":N}, {"code":"stopping","message":...}
(exit 0) or {"error":...,"code":...}.

Linux only: on other systems baton reload exits 1 at once ("baton reload: not
supported on darwin: ...").`

// Exit statuses of baton reload beyond 0, 1 and 2.
const (
	exitInProgress  = 3
	exitDenied      = 4
	exitNoServer    = 5
	exitInterrupted = 130 // 128 + SIGINT, as a shell reports it
)

// stopGrace is how long baton reload, when the server closes the
// connection without an answer, waits for its own SIGTERM from the same stop (systemd signals
// the main process first, then ExecReload=) before it reports no outcome.
const stopGrace = time.Second

type reloadCommand struct {
	io    stdio
	flags *flagSet
	target
	timeout time.Duration
	json    bool
	window  bool
}

func newReloadCmd(io stdio) command {
	c := &reloadCommand{io: io, flags: newFlagSet("reload", reloadUsage, io.Stdout)}
	c.register(c.flags, "the process to upgrade")
	c.flags.DurationVar(&c.timeout, "timeout", 2*time.Minute, "give up waiting for the outcome after this long")
	c.flags.BoolVar(&c.json, "json", false, `print {"pid":N} or {"error":..., "code":...} on stdout`)
	c.flags.BoolVar(&c.window, "wait-window", false, "wait for the end of the new generation's watch window, not the cut-over")
	return c
}

// reloadJSON is the output of --json.
type reloadJSON struct {
	PID     int    `json:"pid,omitempty"`
	Error   string `json:"error,omitempty"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"` // with code "stopping", exit 0
}

// reloadOutcome is what control.Reload returned, and the signals that
// arrived while it ran.
type reloadOutcome struct {
	pid         int
	err         error
	terminated  bool // SIGTERM: the service is probably stopping
	interrupted bool // SIGINT, or ctx cancelled: the client gave up
}

func (c *reloadCommand) Run(ctx context.Context, args []string) error {
	if err := c.flags.parse(args); err != nil {
		return err
	}
	if err := c.flags.noArgs(); err != nil {
		return err
	}
	pid, err := c.resolve("reload")
	if err != nil {
		return err
	}
	if c.timeout <= 0 {
		return usagef("reload", "--timeout must be positive")
	}
	// main cancels ctx on SIGINT and SIGTERM; reload must tell them apart
	// and outlive SIGTERM, so it listens itself. A signal that came before
	// is ctx's cause.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	term := false
	if ctx.Err() != nil {
		if signalOf(ctx) != syscall.SIGTERM {
			return &exitError{code: exitInterrupted, err: fmt.Errorf("pid %d: interrupted before the request was sent: %w", pid, context.Cause(ctx))}
		}
		// SIGTERM: the service is probably stopping. Ask all the same:
		// the answer tells.
		term = true
	}
	o := c.reload(ctx, pid, sigs, term)
	return c.report(pid, o)
}

// reload asks pid to upgrade and waits for the answer, --timeout or SIGINT;
// a SIGTERM is noted and the wait goes on.
func (c *reloadCommand) reload(ctx context.Context, pid int, sigs <-chan os.Signal, term bool) reloadOutcome {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
	defer cancel()
	res := make(chan reloadOutcome, 1)
	go func() {
		p, err := control.ReloadWith(rctx, pid, control.ReloadOptions{WaitWindow: c.window})
		res <- reloadOutcome{pid: p, err: err}
	}()
	intr := false
	handle := func(sig os.Signal) {
		if sig == syscall.SIGTERM {
			term = true
			return
		}
		intr = true
		cancel()
	}
	done := ctx.Done()
	if term {
		done = nil // seen
	}
	for {
		select {
		case o := <-res:
			o.terminated, o.interrupted = term, intr
			if errors.Is(o.err, control.ErrNoReply) && !term && !intr {
				o.terminated, o.interrupted = awaitStop(sigs)
			}
			return o
		case sig := <-sigs:
			handle(sig)
		case <-done:
			done = nil
			// The signal that cancelled ctx may have come before sigs was
			// registered; handling it twice changes nothing. A caller's
			// own cancel (no signal) gives up.
			sig := signalOf(ctx)
			if sig == nil {
				sig = syscall.SIGINT
			}
			handle(sig)
		}
	}
}

// serverGone reports whether err says the server's process went away
// (or closed its control socket) without an answer.
func serverGone(err error) bool {
	return errors.Is(err, control.ErrNoReply) || errors.Is(err, control.ErrNoServer)
}

// awaitStop waits up to stopGrace for a signal after the server closed the
// connection without an answer.
func awaitStop(sigs <-chan os.Signal) (terminated, interrupted bool) {
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case sig := <-sigs:
		return sig == syscall.SIGTERM, sig != syscall.SIGTERM
	case <-t.C:
		return false, false
	}
}

// report prints the outcome and returns the error that gives the exit
// status.
func (c *reloadCommand) report(pid int, o reloadOutcome) error {
	err := o.err
	switch {
	case err == nil:
		if c.json {
			return json.NewEncoder(c.io.Stdout).Encode(reloadJSON{PID: o.pid})
		}
		_, err := fmt.Fprintln(c.io.Stdout, o.pid)
		return err
	case errors.Is(err, control.ErrStopping),
		o.terminated && serverGone(err):
		// The stop superseded the reload: nothing failed, and systemd
		// counts only status 0 of ExecReload= as clean.
		msg := "upgrade abandoned: the service is stopping"
		fmt.Fprintf(c.io.Stderr, "baton reload: %s (%v)\n", msg, err)
		if c.json {
			return json.NewEncoder(c.io.Stdout).Encode(reloadJSON{Code: control.CodeStopping, Message: msg})
		}
		return nil
	}
	code, name := exitFailure, control.CodeFailed
	var ce *control.Error
	var se *control.StrangerError
	switch {
	case o.interrupted && errors.Is(err, context.Canceled):
		code, name = exitInterrupted, "interrupted"
		err = fmt.Errorf("interrupted: pid %d goes on with the upgrade (giving up waiting does not cancel it); its outcome is in the service's log", pid)
	case errors.Is(err, control.ErrInProgress):
		code, name = exitInProgress, control.CodeInProgress
	case errors.Is(err, control.ErrDenied):
		code, name = exitDenied, control.CodeDenied
		err = fmt.Errorf("permission denied: %w", err)
	case errors.Is(err, control.ErrNoServer):
		code, name = exitNoServer, "no-server"
	case errors.Is(err, context.DeadlineExceeded):
		code, name = exitNoServer, "timeout"
		err = fmt.Errorf("pid %d: no outcome within %s (the upgrade may still finish)", pid, c.timeout)
	case errors.Is(err, control.ErrNoReply):
		code, name = exitNoServer, "no-reply"
		err = fmt.Errorf("%w (the process exited, or closed its control socket, before answering)", err)
	case errors.As(err, &se):
		name = "stranger"
	case errors.As(err, &ce):
		name = ce.Code
	}
	if c.json {
		_ = json.NewEncoder(c.io.Stdout).Encode(reloadJSON{Error: err.Error(), Code: name})
	}
	return &exitError{code: code, err: err}
}

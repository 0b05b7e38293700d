package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/batonhq/baton/internal/control"
)

const reloadUsage = `
baton reload (--pid PID | --pidfile FILE) [--timeout D] [--json]

Asks a running baton process (a server built with package handoff, or
'baton run') to upgrade, and waits for the outcome. Exits 0 and prints the
pid now serving when the new generation is ready; otherwise exits non-zero
with the reason: the new process exited with status N, was not ready in
time, its binary is missing, an upgrade is already in progress, permission
denied (only the process's own user and root may ask), or no baton process
at that pid. The old generation keeps serving in every failure.

Made for ExecReload=, so that 'systemctl reload' waits for the upgrade and
fails when it fails:

  ExecReload=/usr/bin/baton reload --pid $MAINPID

Exit status: 0 serving, 1 upgrade failed (the old generation serves),
3 upgrade already in progress, 4 permission denied, 5 no baton process
there or no outcome within --timeout, 2 bad command line.`

// Exit statuses of baton reload beyond 0, 1 and 2.
const (
	exitInProgress = 3
	exitDenied     = 4
	exitNoServer   = 5
)

type reloadCommand struct {
	io      stdio
	flags   *flagSet
	pid     int
	pidfile string
	timeout time.Duration
	json    bool
}

func newReloadCmd(io stdio) command {
	c := &reloadCommand{io: io, flags: newFlagSet("reload", reloadUsage, io.Stdout)}
	c.flags.IntVar(&c.pid, "pid", 0, "the process to upgrade")
	c.flags.StringVar(&c.pidfile, "pidfile", "", "read the pid from this `file`")
	c.flags.DurationVar(&c.timeout, "timeout", 2*time.Minute, "give up waiting for the outcome after this long")
	c.flags.BoolVar(&c.json, "json", false, `print {"pid":N} or {"error":..., "code":...} on stdout`)
	return c
}

// reloadJSON is the output of --json.
type reloadJSON struct {
	PID   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
	Code  string `json:"code,omitempty"`
}

func (c *reloadCommand) Run(ctx context.Context, args []string) error {
	if err := c.flags.parse(args); err != nil {
		return err
	}
	if err := c.flags.noArgs(); err != nil {
		return err
	}
	pid, err := c.target()
	if err != nil {
		return err
	}
	if c.timeout <= 0 {
		return usagef("reload", "--timeout must be positive")
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	newPID, err := control.Reload(ctx, pid)
	if err == nil {
		if c.json {
			return json.NewEncoder(c.io.Stdout).Encode(reloadJSON{PID: newPID})
		}
		_, err := fmt.Fprintln(c.io.Stdout, newPID)
		return err
	}
	code, name := exitFailure, control.CodeFailed
	var ce *control.Error
	switch {
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
	case errors.As(err, &ce):
		name = ce.Code
	}
	if c.json {
		_ = json.NewEncoder(c.io.Stdout).Encode(reloadJSON{Error: err.Error(), Code: name})
	}
	return &exitError{code: code, err: err}
}

// target is the pid from --pid or --pidfile.
func (c *reloadCommand) target() (int, error) {
	switch {
	case c.pid != 0 && c.pidfile != "":
		return 0, usagef("reload", "give --pid or --pidfile, not both")
	case c.pid < 0:
		return 0, usagef("reload", "--pid %d: want a positive pid", c.pid)
	case c.pid > 0:
		return c.pid, nil
	case c.pidfile == "":
		return 0, usagef("reload", "want --pid PID or --pidfile FILE")
	}
	b, err := os.ReadFile(c.pidfile)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s: %q is not a pid", c.pidfile, strings.TrimSpace(string(b)))
	}
	return pid, nil
}

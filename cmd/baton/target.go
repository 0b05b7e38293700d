package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/batonhq/baton/internal/control"
)

// target is the process a command talks to, from --pid or --pidfile.
type target struct {
	pid     int
	pidfile string
}

// register adds --pid, described by what, and --pidfile to f.
func (t *target) register(f *flagSet, what string) {
	f.IntVar(&t.pid, "pid", 0, what)
	f.StringVar(&t.pidfile, "pidfile", "", "read the pid from this `file`")
}

// resolve is the pid the flags name, for the command cmd's messages.
func (t *target) resolve(cmd string) (int, error) {
	pid, pidfile := t.pid, t.pidfile
	switch {
	case pid != 0 && pidfile != "":
		return 0, usagef(cmd, "give --pid or --pidfile, not both")
	case pid < 0:
		return 0, usagef(cmd, "--pid %d: want a positive pid", pid)
	case pid > 0:
		return pid, nil
	case pidfile == "":
		return 0, usagef(cmd, "want --pid PID or --pidfile FILE")
	}
	b, err := os.ReadFile(pidfile)
	if err != nil {
		return 0, err
	}
	pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s: %q is not a pid", pidfile, strings.TrimSpace(string(b)))
	}
	return pid, nil
}

// inNamespace adds to an error that says pid's control socket is in a
// network namespace we could not enter (not root) the command that runs
// this one there: abstract unix sockets belong to a network namespace, and
// the default hardened units give the service one of its own
// (PrivateNetwork=yes).
func inNamespace(err error, pid int) error {
	var ne *control.NamespaceError
	if !errors.As(err, &ne) {
		return err
	}
	return fmt.Errorf("%w\nrun it as root, or in that namespace: nsenter -t %d -n %s", err, pid, shellJoin(os.Args))
}

// shellJoin quotes args for a POSIX shell where they need it.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:@,+%") == "" {
			q[i] = a
			continue
		}
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

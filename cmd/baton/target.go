package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
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

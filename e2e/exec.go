//go:build linux

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ExecError is a command in the box that exited non-zero (or could not run).
type ExecError struct {
	Argv   []string
	Output string // combined stdout and stderr
	Err    error
}

func (e *ExecError) Error() string {
	return fmt.Sprintf("%s: %v: %s", strings.Join(e.Argv, " "), e.Err, strings.TrimSpace(e.Output))
}

func (e *ExecError) Unwrap() error { return e.Err }

// Command returns a command that runs argv inside all of the box's
// namespaces (through nsenter) with a plain environment: PATH, LANG, no
// pager, no colors.
func (b *Box) Command(ctx context.Context, argv ...string) *exec.Cmd {
	args := []string{"-t", strconv.Itoa(b.pid), "-m", "-u", "-i", "-n", "-p", "-C", "--"}
	cmd := exec.CommandContext(ctx, "nsenter", append(args, argv...)...)
	cmd.Env = []string{"PATH=" + boxPath, "LANG=C.UTF-8", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", "TERM=dumb"}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Exec runs argv in the box and returns its combined output; a non-zero
// exit is an *ExecError holding the output.
func (b *Box) Exec(ctx context.Context, argv ...string) (string, error) {
	select {
	case <-b.done:
		return "", &ExecError{Argv: argv, Err: ErrBoxDown}
	default:
	}
	var out bytes.Buffer
	cmd := b.Command(ctx, argv...)
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return out.String(), &ExecError{Argv: argv, Output: out.String(), Err: err}
	}
	return out.String(), nil
}

// context returns a context for one command: CommandTimeout, and a few
// seconds before the test's deadline at the latest.
func (b *Box) context() (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(b.cfg.CommandTimeout)
	if t, ok := b.t.(interface{ Deadline() (time.Time, bool) }); ok {
		if d, ok := t.Deadline(); ok && d.Add(-5*time.Second).Before(deadline) {
			deadline = d.Add(-5 * time.Second)
		}
	}
	return context.WithDeadline(context.Background(), deadline)
}

// Run runs argv in the box and fails the test when it exits non-zero.
func (b *Box) Run(argv ...string) string {
	b.t.Helper()
	ctx, cancel := b.context()
	defer cancel()
	out, err := b.Exec(ctx, argv...)
	if err != nil {
		b.t.Fatalf("box %s: %v", b.name, err)
	}
	return out
}

// Systemctl runs systemctl with args in the box and fails the test when it
// exits non-zero.
func (b *Box) Systemctl(args ...string) string {
	b.t.Helper()
	return b.Run(append([]string{"systemctl"}, args...)...)
}

// Install copies unit files (host paths) into the box's
// /etc/systemd/system and reloads systemd's configuration.
func (b *Box) Install(files ...string) {
	b.t.Helper()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			b.t.Fatalf("e2e: install: %v", err)
		}
		b.writeUnit(filepath.Base(f), string(data))
	}
	b.Systemctl("daemon-reload")
}

// InstallText writes units given as name -> content into the box's
// /etc/systemd/system and reloads systemd's configuration.
func (b *Box) InstallText(units map[string]string) {
	b.t.Helper()
	for name, text := range units {
		b.writeUnit(name, text)
	}
	b.Systemctl("daemon-reload")
}

func (b *Box) writeUnit(name, text string) {
	b.t.Helper()
	if strings.ContainsRune(name, '/') || name == "" || name[0] == '.' {
		b.t.Fatalf("e2e: bad unit file name %q", name)
	}
	if err := os.WriteFile(filepath.Join(b.state, "units", name), []byte(text), 0o644); err != nil {
		b.t.Fatalf("e2e: install: %v", err)
	}
}

// Show returns the unit's properties (systemctl show -p); with no props,
// all of them.
func (b *Box) Show(unit string, props ...string) map[string]string {
	b.t.Helper()
	args := []string{"show"}
	if len(props) > 0 {
		args = append(args, "--property="+strings.Join(props, ","))
	}
	out := b.Systemctl(append(args, "--", unit)...)
	m := make(map[string]string, len(props))
	for line := range strings.SplitSeq(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

// MainPID returns the unit's MainPID as the box sees it (0: none).
func (b *Box) MainPID(unit string) int {
	b.t.Helper()
	v := b.Show(unit, "MainPID")["MainPID"]
	pid, err := strconv.Atoi(v)
	if err != nil {
		b.t.Fatalf("e2e: MainPID of %s: %q", unit, v)
	}
	return pid
}

// Journal returns the unit's journal (messages of its processes and
// systemd's messages about it), one line per entry.
func (b *Box) Journal(unit string) string {
	b.t.Helper()
	// Make what journald already received visible.
	b.Run("journalctl", "--sync")
	return b.Run("journalctl", "--no-pager", "-o", "short-monotonic", "-u", unit)
}

// Processes returns the box's processes, pid (as the box sees it) to
// command line with spaces between the arguments.
func (b *Box) Processes() map[int]string {
	b.t.Helper()
	ps, err := b.processes()
	if err != nil {
		b.t.Fatalf("e2e: processes: %v", err)
	}
	return ps
}

// processes is Processes for any goroutine: it returns the error.
func (b *Box) processes() (map[int]string, error) {
	proc := filepath.Join(b.Root(), "proc")
	entries, err := os.ReadDir(proc)
	if err != nil {
		return nil, err
	}
	ps := map[int]string{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join(proc, e.Name(), "cmdline"))
		if err != nil {
			continue // exited meanwhile
		}
		ps[pid] = strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " "))
	}
	return ps, nil
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"strings"
	"text/tabwriter"
)

// commands is the registry of subcommands, in the order `baton help` lists
// them. Adding a subcommand is one file with its type and one line here.
var commands = []commandInfo{
	{Name: "units", Summary: "write the .socket and .service units for a service", New: newUnitsCmd},
	{
		Name: "fds", Summary: "print the file descriptors this process was handed", New: newFDsCmd,
		LinuxOnly: "package activation takes over inherited fds on Linux only",
	},
	{
		Name: "run", Summary: "run a program with its sockets and upgrade it without downtime", New: newRunCmd,
		LinuxOnly: "it passes sockets and supervises generations with Linux's pidfds and child subreaper",
	},
	{
		Name: "reload", Summary: "upgrade a running baton process and wait for the outcome", New: newReloadCmd,
		LinuxOnly: "upgrades and the control socket are implemented for Linux only",
	},
	{
		Name: "status", Summary: "show a running baton process's generations and upgrades", New: newStatusCmd,
		LinuxOnly: "it asks the control socket, which is implemented for Linux only",
	},
	{
		Name: "stop", Summary: "stop a process gracefully and wait until it has exited", New: newStopCmd,
		LinuxOnly: "it waits for the process through a Linux pidfd",
	},
	{
		Name: "demo", Summary: "show zero-downtime upgrades of the example server under load", New: newDemoCmd,
		LinuxOnly: "upgrades are implemented for Linux only",
	},
	{Name: "version", Summary: "print baton's version and the revision it was built from", New: newVersionCmd},
}

// commandInfo names a subcommand and makes it.
type commandInfo struct {
	Name    string
	Summary string                 // one line for `baton help`
	New     func(io stdio) command // a fresh command writing to io
	// LinuxOnly, when set, says why the command works on Linux only:
	// elsewhere it prints its usage for -h but otherwise fails with
	// errNotSupported (exit status 1) before doing anything.
	LinuxOnly string
}

// goos is the system the commands run on (runtime.GOOS; a var for tests).
var goos = runtime.GOOS

// errNotSupported is wrapped by a Linux-only command run elsewhere.
var errNotSupported = errors.New("not supported")

// supported returns nil when c works on goos, else an error wrapping
// errNotSupported that names the system and the reason.
func (c commandInfo) supported() error {
	if c.LinuxOnly == "" || goos == "linux" {
		return nil
	}
	return fmt.Errorf("%w on %s: Linux only (%s)", errNotSupported, goos, c.LinuxOnly)
}

// helpRequested reports whether args ask for the usage (-h, -help or
// --help before any "--"): a Linux-only command still shows it.
func helpRequested(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// command is one subcommand. Run parses args with the command's own flag
// set and does the work; it returns flag.ErrHelp after printing its usage
// for -h, a *usageError for a bad command line, and any other error for a
// failure.
type command interface {
	Run(ctx context.Context, args []string) error
}

// stdio is where a command reads and writes.
type stdio struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// usageError is a bad command line: main prints it with a pointer to the
// usage and exits with status 2.
type usageError struct {
	cmd string // the subcommand, "" for baton itself
	err error
}

func (e *usageError) Error() string {
	if e.cmd == "" {
		return e.err.Error()
	}
	return e.cmd + ": " + e.err.Error()
}

func (e *usageError) Unwrap() error { return e.err }

func usagef(cmd, format string, args ...any) error {
	return &usageError{cmd: cmd, err: fmt.Errorf(format, args...)}
}

// exitError makes a command exit with a status of its choice. With a nil
// err main prints nothing: the command has reported already.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// ExitCode returns the exit status.
func (e *exitError) ExitCode() int { return e.code }

// flagSet is a subcommand's flag.FlagSet with baton's help and errors:
// -h prints the usage to stdout, a bad flag becomes a *usageError.
type flagSet struct {
	*flag.FlagSet
	usage  string // "baton NAME ARGS\n\nwhat it does", before the flag list
	stdout io.Writer
}

func newFlagSet(name, usage string, stdout io.Writer) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse errors go to main, help to stdout
	fs.Usage = func() {}
	return &flagSet{FlagSet: fs, usage: usage, stdout: stdout}
}

// parse parses args. It returns flag.ErrHelp after printing the usage for
// -h or --help, and a *usageError for anything else wrong.
func (f *flagSet) parse(args []string) error {
	err := f.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		f.printUsage(f.stdout)
		return flag.ErrHelp
	}
	return &usageError{cmd: f.Name(), err: err}
}

func (f *flagSet) printUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s\n", strings.TrimSpace(f.usage))
	n := 0
	f.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintln(w, "\nFlags:")
		f.SetOutput(w)
		f.PrintDefaults()
		f.SetOutput(io.Discard)
	}
}

// noArgs refuses positional arguments.
func (f *flagSet) noArgs() error {
	if f.NArg() > 0 {
		return usagef(f.Name(), "unexpected argument %q", f.Arg(0))
	}
	return nil
}

func lookup(name string) (commandInfo, bool) {
	for _, c := range commands {
		if c.Name == name {
			return c, true
		}
	}
	return commandInfo{}, false
}

// dispatch runs the subcommand args[0].
func dispatch(ctx context.Context, args []string, io stdio) error {
	if len(args) == 0 {
		printUsage(io.Stderr)
		return &usageError{err: errors.New("no command given")}
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		return help(ctx, rest, io)
	case "-version", "--version":
		return newVersionCmd(io).Run(ctx, rest)
	}
	c, ok := lookup(name)
	if !ok {
		return &usageError{err: fmt.Errorf("unknown command %q", name)}
	}
	if err := c.supported(); err != nil && !helpRequested(rest) {
		return err
	}
	return c.New(io).Run(ctx, rest)
}

// help implements `baton help [CMD]`.
func help(ctx context.Context, args []string, io stdio) error {
	switch len(args) {
	case 0:
		printUsage(io.Stdout)
		return nil
	case 1:
		if args[0] == "help" {
			printUsage(io.Stdout)
			return nil
		}
		c, ok := lookup(args[0])
		if !ok {
			return &usageError{cmd: "help", err: fmt.Errorf("unknown command %q", args[0])}
		}
		return c.New(io).Run(ctx, []string{"-h"})
	}
	return &usageError{cmd: "help", err: errors.New("want at most one command name")}
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, `baton: zero-downtime upgrades for servers that speak systemd's socket
activation and sd_notify.

usage: baton COMMAND [FLAGS] [ARGS]

Commands:
`)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, c := range commands {
		if c.LinuxOnly != "" {
			fmt.Fprintf(tw, "  %s\t%s (Linux only)\n", c.Name, c.Summary)
			continue
		}
		fmt.Fprintf(tw, "  %s\t%s\n", c.Name, c.Summary)
	}
	fmt.Fprintf(tw, "  %s\t%s\n", "help", "list the commands, or show one command's usage")
	_ = tw.Flush() // writes to w, whose errors are not actionable here

	fmt.Fprint(w, `
Run 'baton help COMMAND' or 'baton COMMAND -h' for a command's usage.
Exit status: 0 success, 1 failure, 2 usage error. A Linux-only command
run on another system exits 1: "baton run: not supported on darwin".
`)
}

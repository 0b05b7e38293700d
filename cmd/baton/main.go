package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], stdio{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
	stop()
	os.Exit(code)
}

// run runs the command line args and returns the exit status.
func run(ctx context.Context, args []string, io stdio) int {
	err := dispatch(ctx, args, io)
	prefix := "baton"
	if len(args) > 0 {
		if _, ok := lookup(args[0]); ok {
			prefix += " " + args[0]
		}
	}
	report(io.Stderr, prefix, err)
	return exitCode(err)
}

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// exitCode maps the error a command returned to the process's exit status.
func exitCode(err error) int {
	var (
		usage *usageError
		coder interface{ ExitCode() int }
	)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &usage):
		return exitUsage
	case errors.As(err, &coder):
		return coder.ExitCode()
	}
	return exitFailure
}

// report prints the error the way baton's users read it, after prefix
// ("baton units").
func report(w io.Writer, prefix string, err error) {
	var (
		usage  *usageError
		silent *exitError
	)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, &usage):
		if usage.cmd != "" && !strings.HasSuffix(prefix, " "+usage.cmd) {
			prefix += " " + usage.cmd // baton help CMD
		}
		fmt.Fprintf(w, "%s: %v\n", prefix, usage.err)
		if usage.cmd != "" && usage.cmd != "help" {
			fmt.Fprintf(w, "Run 'baton help %s' for usage.\n", usage.cmd)
		} else {
			fmt.Fprintln(w, "Run 'baton help' for usage.")
		}
	case errors.As(err, &silent) && silent.err == nil:
	default:
		fmt.Fprintf(w, "%s: %v\n", prefix, err)
	}
}

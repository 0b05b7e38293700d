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
	// First thing: until a handler is in place, SIGTERM kills the process.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if sig, ok := <-sigs; ok {
			cancel(&signalError{sig: sig})
		}
	}()
	code := run(ctx, os.Args[1:], stdio{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
	signal.Stop(sigs)
	close(sigs) // no send after Stop
	<-done
	cancel(nil)
	os.Exit(code)
}

// signalError is the cause of the context main gives a command when a
// signal cancelled it.
type signalError struct{ sig os.Signal }

func (e *signalError) Error() string { return e.sig.String() + " signal received" }

// signalOf returns the signal that cancelled ctx, or nil when none did.
func signalOf(ctx context.Context) os.Signal {
	var se *signalError
	if errors.As(context.Cause(ctx), &se) {
		return se.sig
	}
	return nil
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

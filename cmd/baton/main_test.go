package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batonhq/baton/internal/testproc"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// batonBin is the baton binary built once for the tests of this package.
var batonBin string

func TestMain(m *testing.M) {
	testproc.Register("silent-server", silentServer)
	testproc.Register("report-mode", reportMode)
	if _, ok := os.LookupEnv(testproc.EnvHelper); ok {
		testproc.Main(m) // a helper: no baton binary needed
	}
	flag.Parse()
	dir, err := os.MkdirTemp("", "baton-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	batonBin = filepath.Join(dir, "baton")
	build := exec.Command("go", "build", "-o", batonBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building baton:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

// baton runs the built binary with args and an environment without
// LISTEN_* variables, and returns what it did.
func baton(t *testing.T, args ...string) result {
	t.Helper()
	return batonCmd(t, exec.Command(batonBin, args...))
}

func batonCmd(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	r, err := runCmd(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// runCmd runs cmd with the environment without LISTEN_* variables unless
// cmd.Env is set. Only a failure to run it is an error.
func runCmd(cmd *exec.Cmd) (result, error) {
	wait, err := startCmd(cmd)
	if err != nil {
		return result{}, err
	}
	return wait()
}

// startCmd starts cmd as runCmd does and returns the function that waits
// for it.
func startCmd(cmd *exec.Cmd) (wait func() (result, error), err error) {
	if cmd.Env == nil {
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "LISTEN_") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%v: %w", cmd.Args, err)
	}
	return func() (result, error) {
		err := cmd.Wait()
		r := result{stdout: out.String(), stderr: errb.String()}
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			r.code = exit.ExitCode()
		case err != nil:
			return r, fmt.Errorf("%v: %w", cmd.Args, err)
		}
		return r, nil
	}, nil
}

type usageCase struct {
	args       []string
	code       int
	stdout     string // must contain
	stderr     string // must contain
	quietOut   bool   // stdout must be empty
	quietError bool   // stderr must be empty
}

func TestHelpAndUsage(t *testing.T) {
	tests := []usageCase{
		{args: nil, code: 2, stderr: "usage: baton COMMAND", quietOut: true},
		{args: []string{"help"}, code: 0, stdout: "units", quietError: true},
		{args: []string{"-h"}, code: 0, stdout: "usage: baton COMMAND", quietError: true},
		{args: []string{"--help"}, code: 0, stdout: "usage: baton COMMAND", quietError: true},
		{args: []string{"help", "units"}, code: 0, stdout: "usage: baton units", quietError: true},
		{args: []string{"units", "-h"}, code: 0, stdout: "-listen NAME=URL", quietError: true},
		{args: []string{"units", "--help"}, code: 0, stdout: "usage: baton units", quietError: true},
		{args: []string{"help", "help"}, code: 0, stdout: "usage: baton COMMAND", quietError: true},
		{args: []string{"help", "nope"}, code: 2, stderr: `baton help: unknown command "nope"`, quietOut: true},
		{args: []string{"help", "units", "fds"}, code: 2, stderr: "baton help: want at most one", quietOut: true},
		{args: []string{"nope"}, code: 2, stderr: `baton: unknown command "nope"`, quietOut: true},
		{args: []string{"units", "--bogus"}, code: 2, stderr: "baton units: flag provided but not defined: -bogus\nRun 'baton help units' for usage.", quietOut: true},
		{args: []string{"units", "--name", "a", "--exec", "/bin/a", "extra"}, code: 2, stderr: `unexpected argument "extra"`, quietOut: true},
		{args: []string{"units", "--drain", "soon"}, code: 2, stderr: `invalid value "soon" for flag -drain`, quietOut: true},
	}
	for _, c := range commands {
		tests = append(tests,
			usageCase{args: []string{c.Name, "-h"}, code: 0, stdout: "usage: baton " + c.Name, quietError: true},
			usageCase{args: []string{"help", c.Name}, code: 0, stdout: "usage: baton " + c.Name, quietError: true},
			usageCase{args: []string{c.Name, "--no-such-flag"}, code: 2, stderr: "Run 'baton help " + c.Name + "' for usage.", quietOut: true},
		)
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := baton(t, tt.args...)
			if r.code != tt.code {
				t.Errorf("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, tt.code, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stdout, tt.stdout) {
				t.Errorf("stdout does not contain %q:\n%s", tt.stdout, r.stdout)
			}
			if !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("stderr does not contain %q:\n%s", tt.stderr, r.stderr)
			}
			if tt.quietOut && r.stdout != "" {
				t.Errorf("stdout not empty:\n%s", r.stdout)
			}
			if tt.quietError && r.stderr != "" {
				t.Errorf("stderr not empty:\n%s", r.stderr)
			}
		})
	}
}

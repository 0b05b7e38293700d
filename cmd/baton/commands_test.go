package main

import (
	"bytes"
	"context"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestLinuxOnlyCommands runs each command in this process as on windows
// (goos): a Linux-only one fails with status 1 and "baton NAME: not
// supported on windows" before doing anything, still shows its usage
// (which says so) for -h, and units works.
func TestLinuxOnlyCommands(t *testing.T) {
	defer func(old string) { goos = old }(goos)
	goos = "windows"
	var linuxOnly []string
	for _, c := range commands {
		if c.LinuxOnly != "" {
			linuxOnly = append(linuxOnly, c.Name)
		}
	}
	if want := []string{"fds", "run", "reload", "status", "stop", "demo"}; !slices.Equal(linuxOnly, want) {
		t.Errorf("Linux-only commands %v, want %v", linuxOnly, want)
	}
	runIn := func(args ...string) (code int, stdout, stderr string) {
		var out, errb bytes.Buffer
		code = run(context.Background(), args, stdio{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb})
		return code, out.String(), errb.String()
	}
	for _, name := range linuxOnly {
		t.Run(name, func(t *testing.T) {
			// A bad flag: a command that got past the check would stop
			// at it (status 2), having done nothing.
			code, stdout, stderr := runIn(name, "--no-such-flag")
			want := "baton " + name + ": not supported on windows: Linux only ("
			if code != exitFailure || !strings.HasPrefix(stderr, want) || stdout != "" {
				t.Errorf("exit status %d, stdout %q, stderr %q; want %d and %q...", code, stdout, stderr, exitFailure, want)
			}
			for _, args := range [][]string{{name, "-h"}, {"help", name}} {
				code, stdout, stderr = runIn(args...)
				if code != exitOK || !strings.Contains(stdout, "usage: baton "+name) || stderr != "" {
					t.Errorf("%v: exit status %d, stderr %q, stdout:\n%s", args, code, stderr, stdout)
				}
				if note := "Linux only: on other systems baton " + name + " exits 1"; !strings.Contains(stdout, note) {
					t.Errorf("%v: usage lacks %q:\n%s", args, note, stdout)
				}
			}
		})
	}
	code, stdout, stderr := runIn("units", "--name", "app", "--exec", "/bin/app")
	if code != exitOK || !strings.Contains(stdout, "ExecStart=/bin/app") {
		t.Errorf("units: exit status %d, stderr %q, stdout:\n%s", code, stderr, stdout)
	}
	if _, stdout, _ = runIn("help"); !strings.Contains(stdout, "(Linux only)") {
		t.Errorf("baton help does not mark the Linux-only commands:\n%s", stdout)
	}
}

// TestDocListsCommands: the package doc (go doc ./cmd/baton) lists every
// command of the registry, and help, before anything about the code.
func TestDocListsCommands(t *testing.T) {
	b, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	doc, _, _ := strings.Cut(string(b), "For the code:")
	names := []string{"help"}
	for _, c := range commands {
		names = append(names, c.Name)
	}
	for _, name := range names {
		if !strings.Contains(doc, "//\tbaton "+name+" ") {
			t.Errorf("doc.go's command list lacks baton %s", name)
		}
	}
}

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The README's code is tested: its Go blocks compile against this
// checkout, and its baton command lines parse with baton's own flag sets
// (the safe ones run). A README that drifts from the code fails here.

// readmePath is the repository's README.md, from cmd/baton.
const readmePath = "../../README.md"

// readmeMaxLines is the README's budget: more goes to docs/.
const readmeMaxLines = 300

// pendingMarker, on the line before a Go block, marks code that needs an
// API this checkout does not have yet: the block must then fail to
// compile, and once it compiles the marker must go.
const pendingMarker = "<!-- readme-test: pending"

// block is one fenced code block of the README.
type block struct {
	lang    string
	line    int // of the opening fence, 1-based
	text    string
	pending string // the pending marker before it, if any
}

func readmeBlocks(t *testing.T) (string, []block) {
	t.Helper()
	b, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	var (
		blocks []block
		cur    *block
		prev   string // the last non-empty line outside a block
	)
	for i, l := range lines {
		switch {
		case cur == nil && strings.HasPrefix(l, "```"):
			cur = &block{lang: strings.TrimPrefix(l, "```"), line: i + 1}
			if strings.HasPrefix(prev, pendingMarker) {
				cur.pending = prev
			}
		case cur != nil && l == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += l + "\n"
		case strings.TrimSpace(l) != "":
			prev = l
		}
	}
	if cur != nil {
		t.Fatalf("README.md:%d: unterminated code block", cur.line)
	}
	return string(b), blocks
}

// TestReadmeShape: the README stays within its budget, its relative links
// name files that exist, its import paths name packages that exist, and
// its one test command is the one CI runs.
func TestReadmeShape(t *testing.T) {
	text, blocks := readmeBlocks(t)
	if n := strings.Count(text, "\n"); n > readmeMaxLines {
		t.Errorf("README.md has %d lines, want at most %d: move the rest to docs/", n, readmeMaxLines)
	}
	for _, m := range regexp.MustCompile(`\]\(([^)#]+)(#[^)]*)?\)`).FindAllStringSubmatch(text, -1) {
		if strings.Contains(m[1], "://") {
			continue
		}
		if _, err := os.Stat(filepath.Join("../..", m[1])); err != nil {
			t.Errorf("README.md links to %s: %v", m[1], err)
		}
	}
	for _, m := range regexp.MustCompile(`github\.com/batonhq/baton((?:/[a-z0-9_]+)*)`).FindAllStringSubmatch(text, -1) {
		if fi, err := os.Stat(filepath.Join("../..", m[1])); err != nil || !fi.IsDir() {
			t.Errorf("README.md names github.com/batonhq/baton%s, which is not a directory of the module", m[1])
		}
	}
	ci, err := os.ReadFile("../../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	var tests []string
	for _, b := range blocks {
		for _, c := range commandLines(b) {
			if strings.HasPrefix(c, "go test") {
				tests = append(tests, c)
			}
		}
	}
	if len(tests) != 1 {
		t.Fatalf("README.md has %d go test commands %q, want exactly one", len(tests), tests)
	}
	if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(tests[0]) + `$`).Match(ci) {
		t.Errorf("README.md's test command %q is not a line of .ci/run", tests[0])
	}
}

// TestReadmeGoBlocks compiles each Go block of the README as a program of
// its own, in a temporary module whose baton is this checkout.
func TestReadmeGoBlocks(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the README's programs: not with -short")
	}
	_, blocks := readmeBlocks(t)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	gomod := "module readme.test\n\ngo 1.26.0\n\nrequire github.com/batonhq/baton v0.0.0\n\nreplace github.com/batonhq/baton => " + root + "\n"
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644); err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, b := range blocks {
		if b.lang != "go" {
			continue
		}
		n++
		t.Run(fmt.Sprintf("line%d", b.line), func(t *testing.T) {
			if !strings.HasPrefix(b.text, "package ") {
				t.Fatalf("README.md:%d: a Go block must be a whole file (package main ...), so that it compiles", b.line)
			}
			pkg := filepath.Join(dir, fmt.Sprintf("b%d", b.line))
			if err := os.MkdirAll(pkg, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(pkg, "main.go"), []byte(b.text), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("go", "build", "-o", os.DevNull, "./"+filepath.Base(pkg))
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
			out, err := cmd.CombinedOutput()
			switch {
			case b.pending != "" && err == nil:
				t.Errorf("README.md:%d compiles now: remove its marker %q", b.line, b.pending)
			case b.pending != "":
				t.Logf("README.md:%d is pending (%s) and does not compile yet:\n%s", b.line, b.pending, out)
			case err != nil:
				t.Errorf("README.md:%d does not compile: %v\n%s", b.line, err, out)
			}
		})
	}
	if n == 0 {
		t.Fatal("no Go block in README.md")
	}
}

// commandLines returns the commands of a shell block: continuation lines
// joined, comments and "$ " prompts dropped, "a && b" split.
func commandLines(b block) []string {
	if b.lang != "sh" && b.lang != "console" {
		return nil
	}
	var out []string
	joined := strings.ReplaceAll(b.text, "\\\n", " ")
	for l := range strings.Lines(joined) {
		l = strings.TrimSpace(l)
		if b.lang == "console" {
			if !strings.HasPrefix(l, "$ ") {
				continue // output
			}
			l = strings.TrimPrefix(l, "$ ")
		}
		if i := strings.Index(l, " #"); i >= 0 {
			l = l[:i]
		}
		for part := range strings.SplitSeq(l, "&&") {
			if part = strings.Join(strings.Fields(part), " "); part != "" && !strings.HasPrefix(part, "#") {
				out = append(out, part)
			}
		}
	}
	return out
}

// placeholders are the README's words for values the reader picks.
var placeholders = strings.NewReplacer("PID", "4242", "FILE", "/run/myapp.pid")

// flagsOf is the flag set of a command made by its commandInfo.New.
func flagsOf(t *testing.T, c command) *flagSet {
	t.Helper()
	switch c := c.(type) {
	case *runCommand:
		return c.flags
	case *reloadCommand:
		return c.flags
	case *statusCommand:
		return c.flags
	case *stopCommand:
		return c.flags
	case *unitsCmd:
		return c.flags
	case *fdsCmd:
		return c.flags
	case *demoCommand:
		return c.flags
	case *versionCommand:
		return c.flags
	}
	t.Fatalf("flagsOf: no case for %T: add it", c)
	return nil
}

// TestReadmeCommands: every baton command line of the README (and `go
// run ./cmd/baton CMD`) names a command and parses with its real flag
// set; baton units, version and help lines run, and succeed.
func TestReadmeCommands(t *testing.T) {
	_, blocks := readmeBlocks(t)
	ran, parsed := 0, 0
	for _, b := range blocks {
		for _, line := range commandLines(b) {
			line = strings.Replace(line, "go run ./cmd/baton ", "baton ", 1)
			words, err := splitWords(placeholders.Replace(line))
			if err != nil {
				t.Errorf("README.md:%d: %q: %v", b.line, line, err)
				continue
			}
			if len(words) < 2 || words[0] != "baton" {
				continue
			}
			t.Run(line, func(t *testing.T) {
				args := words[1:]
				if args[0] == "--version" || args[0] == "help" {
					runSafe(t, b.line, args)
					ran++
					return
				}
				info, ok := lookup(args[0])
				if !ok {
					t.Fatalf("README.md:%d: %q: no command %q", b.line, line, args[0])
				}
				fs := flagsOf(t, info.New(stdio{Stdout: new(bytes.Buffer), Stderr: new(bytes.Buffer)}))
				if err := fs.parse(args[1:]); err != nil {
					t.Fatalf("README.md:%d: %q: %v", b.line, line, err)
				}
				parsed++
				if (args[0] == "run" || fs.Lookup("run") != nil && fs.Lookup("run").Value.String() == "true") && fs.NArg() == 0 {
					t.Errorf("README.md:%d: %q: no CMD after --", b.line, line)
				}
				switch args[0] {
				case "units", "version":
					for i, a := range args {
						if a == "--out" && i+1 < len(args) {
							args[i+1] = t.TempDir() // not /etc/systemd/system
						}
					}
					runSafe(t, b.line, args)
					ran++
				}
			})
		}
	}
	if ran == 0 || parsed == 0 {
		t.Fatalf("README.md: %d baton command lines parsed, %d run: the parser lost them", parsed, ran)
	}
}

// runSafe runs a baton command line that has no effect outside the test
// and wants exit status 0.
func runSafe(t *testing.T, line int, args []string) {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(context.Background(), args, stdio{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb}); code != exitOK {
		t.Errorf("README.md:%d: baton %s: exit status %d\nstdout:\n%s\nstderr:\n%s", line, strings.Join(args, " "), code, out.String(), errb.String())
	}
}

// TestReadmeSandboxTable: each "`FLAGS` → `Key=value`" of the README's
// "my app needs" table is what baton units writes for those flags ("no
// `Key=`": the key is absent).
func TestReadmeSandboxTable(t *testing.T) {
	text, _ := readmeBlocks(t)
	tick := regexp.MustCompile("(no )?`([^`]+)`")
	checked := 0
	for line := range strings.Lines(text) {
		cols := strings.Split(line, " | ")
		if !strings.HasPrefix(line, "| ") || len(cols) != 3 {
			continue
		}
		for seg := range strings.SplitSeq(cols[2], "; ") {
			flags, lines, ok := strings.Cut(seg, " → ")
			if !ok || !strings.HasPrefix(strings.TrimSpace(flags), "`--") {
				continue // the header, or no flag
			}
			args := []string{"units", "--name", "myapp", "--exec", "/usr/local/bin/myapp", "--listen", "http=tcp://127.0.0.1:8080"}
			args = append(args, strings.Fields(strings.Trim(flags, "`| "))...)
			var out, errb bytes.Buffer
			if code := run(context.Background(), args, stdio{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb}); code != exitOK {
				t.Errorf("README: %s: exit status %d: %s", flags, code, errb.String())
				continue
			}
			for _, m := range tick.FindAllStringSubmatch(lines, -1) {
				key, value, isLine := strings.Cut(m[2], "=")
				if !isLine || strings.HasPrefix(key, "$") || strings.HasSuffix(value, "...") {
					continue
				}
				checked++
				present := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `=`).MatchString(out.String())
				switch {
				case m[1] != "" && present:
					t.Errorf("README: %s → no %s=, but baton units writes it:\n%s", flags, key, out.String())
				case m[1] == "" && !strings.Contains(out.String(), "\n"+m[2]+"\n"):
					t.Errorf("README: %s → %s, which baton units does not write:\n%s", flags, m[2], out.String())
				}
			}
		}
	}
	if checked < 5 {
		t.Fatalf("README: %d unit lines checked in the \"my app needs\" table: the parser lost them", checked)
	}
}

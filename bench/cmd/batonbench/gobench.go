//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// goBenchmarks are the core's Go benchmarks bench/run reports.
var goBenchmarks = []struct{ name, pkg string }{
	{"BenchmarkReceive", "activation"},
	{"BenchmarkReady", "notify"},
	{"BenchmarkUpgrade", "handoff"},
}

// runGoBenchmarks runs each benchmark briefly in the repository at root.
func runGoBenchmarks(ctx context.Context, root, benchtime, date string) []*benchRow {
	var out []*benchRow
	for _, gb := range goBenchmarks {
		br := &benchRow{Date: date, Kind: "gobench", Name: gb.name, Package: gb.pkg}
		out = append(out, br)
		if !declares(filepath.Join(root, gb.pkg), gb.name) {
			br.Missing = "not in ./" + gb.pkg
			continue
		}
		cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", "^"+gb.name+"$",
			"-benchtime", benchtime, "-count", "1", "./"+gb.pkg+"/")
		cmd.Dir = root
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.Output()
		if err != nil {
			br.Missing = fmt.Sprintf("go test: %v: %s", err, lastLine(stderr.String()+string(stdout)))
			continue
		}
		ns, ok := parseNsOp(string(stdout), gb.name)
		if !ok {
			br.Missing = "no ns/op in output"
			continue
		}
		br.NsOp = ns
	}
	return out
}

func declares(dir, name string) bool {
	files, _ := filepath.Glob(filepath.Join(dir, "*_test.go"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil && bytes.Contains(b, []byte("func "+name+"(")) {
			return true
		}
	}
	return false
}

// parseNsOp finds "BenchmarkX-N  iters  123.4 ns/op" (the first line of
// name, sub-benchmarks excluded) in go test output.
func parseNsOp(out, name string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 {
			continue
		}
		base, _, _ := strings.Cut(f[0], "-")
		if base != name {
			continue
		}
		for i := 2; i+1 < len(f); i++ {
			if f[i+1] == "ns/op" {
				v, err := strconv.ParseFloat(f[i], 64)
				return v, err == nil
			}
		}
	}
	return 0, false
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

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
// subs, when set, are the sub-benchmarks reported (one row each).
var goBenchmarks = []struct {
	name, pkg string
	subs      []string
}{
	{"BenchmarkReceive", "activation", nil},
	{"BenchmarkReady", "notify", nil},
	{"BenchmarkUpgrade", "handoff", nil},
	// One keep-alive connection: net/http alone, then wrapped by HTTP.
	{"BenchmarkHTTPServe", "handoff", []string{"plain", "handoff"}},
}

// runGoBenchmarks runs each benchmark briefly in the repository at root.
func runGoBenchmarks(ctx context.Context, root, benchtime, date string) []*benchRow {
	var out []*benchRow
	for _, gb := range goBenchmarks {
		names := []string{gb.name}
		if gb.subs != nil {
			names = nil
			for _, sub := range gb.subs {
				names = append(names, gb.name+"/"+sub)
			}
		}
		var rows []*benchRow
		for _, n := range names {
			rows = append(rows, &benchRow{Date: date, Kind: "gobench", Name: n, Package: gb.pkg})
		}
		out = append(out, rows...)
		missing := func(why string) {
			for _, br := range rows {
				br.Missing = why
			}
		}
		if !declares(filepath.Join(root, gb.pkg), gb.name) {
			missing("not in ./" + gb.pkg)
			continue
		}
		cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", "^"+gb.name+"$", "-benchmem",
			"-benchtime", benchtime, "-count", "1", "./"+gb.pkg+"/")
		cmd.Dir = root
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.Output()
		if err != nil {
			missing(fmt.Sprintf("go test: %v: %s", err, lastLine(stderr.String()+string(stdout))))
			continue
		}
		for _, br := range rows {
			ns, allocs, ok := parseNsOp(string(stdout), br.Name)
			if !ok {
				br.Missing = "no ns/op in output"
				continue
			}
			br.NsOp, br.AllocsOp = ns, allocs
		}
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

// parseNsOp finds "BenchmarkX-N  iters  123.4 ns/op  ...  5 allocs/op"
// (the first line of name, a sub-benchmark named in full) in go test
// output; allocs is -1 without -benchmem's column.
func parseNsOp(out, name string) (ns, allocs float64, ok bool) {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 {
			continue
		}
		if f[0] != name && !strings.HasPrefix(f[0], name+"-") {
			continue
		}
		allocs = -1
		for i := 2; i+1 < len(f); i++ {
			v, err := strconv.ParseFloat(f[i], 64)
			switch f[i+1] {
			case "ns/op":
				ns, ok = v, err == nil
			case "allocs/op":
				if err == nil {
					allocs = v
				}
			}
		}
		return ns, allocs, ok
	}
	return 0, -1, false
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

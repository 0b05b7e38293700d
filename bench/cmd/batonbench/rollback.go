//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/batonhq/baton/bench/control"
	"github.com/batonhq/baton/bench/load"
)

// rollbackRow is the outcome of `batonbench rollback`.
type rollbackRow struct {
	Rounds int    `json:"rounds"`
	Window string `json:"watch_window"`
	// From the SIGKILL of the successor to the first fresh connection
	// answered by the old generation: p50, p90, p99, max (ms). The probe
	// polls every 200 µs.
	BackMS [4]float64 `json:"kill_to_old_answers_ms"`
	// The background load: requests answered, and failures by class.
	// Requests in flight on the killed successor's connections fail by
	// construction; a refused connect never may.
	Requests int            `json:"requests"`
	Failures map[string]int `json:"failures"`
	Refused  int            `json:"refused"` // load and probes
	LoadAvg  string         `json:"loadavg"`
}

// rollback measures the watch window's rollback: examples/http with
// -watch-window under keep-alive and new-connection load; each round
// upgrades it (SIGHUP), waits until the successor answers, SIGKILLs the
// successor at a random moment of the first 80 % of its window, and times
// how long until a fresh connection is answered by the old generation.
func rollback(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("batonbench rollback", flag.ContinueOnError)
	fs.SetOutput(stderr)
	binDir := fs.String("bin", "results/bin", "`dir`ectory with examples/http built as http")
	rounds := fs.Int("n", 100, "rollbacks to measure")
	window := fs.Duration("window", time.Second, "examples/http's -watch-window")
	clients := fs.Int("clients", 8, "background clients, half keep-alive, half a connection per request")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		return fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %w", errno)
	}
	b := &bins{dir: *binDir}
	if !b.has("http") {
		return fmt.Errorf("%w: %s", errMissing, b.path("http"))
	}
	dir, err := os.MkdirTemp("", "batonbench-rollback-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	lf, err := os.Create(filepath.Join(dir, "http.log"))
	if err != nil {
		return err
	}
	defer lf.Close()
	pidfile := filepath.Join(dir, "http.pid")
	inst := &instance{b: b, log: lf, addr: addr, dir: dir,
		argv: []string{"http", "-listen", addr, "-pidfile", pidfile, "-watch-window", window.String()}}
	if err := inst.spawn(); err != nil {
		return err
	}
	var successor int
	defer func() { inst.kill(successor) }()
	if err := waitServing(ctx, addr, nil, 10*time.Second); err != nil {
		return fmt.Errorf("examples/http not serving: %w", err)
	}
	old := inst.cmd.Process.Pid

	stop := make(chan struct{})
	type runResult struct {
		res *load.Result
		err error
	}
	results := make(chan runResult, 2)
	for _, mode := range []load.Mode{load.KeepAlive, load.NewConn} {
		go func() {
			res, err := load.Run(ctx, load.Config{Addr: addr, Clients: max(*clients/2, 1), Mode: mode, Duration: time.Hour, Stop: stop})
			results <- runResult{res, err}
		}()
	}
	row := rollbackRow{Rounds: *rounds, Window: window.String(), Failures: map[string]int{}}
	var back []time.Duration
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for i := range *rounds {
		if err := syscall.Kill(old, syscall.SIGHUP); err != nil {
			return err
		}
		succ, refused, err := answeredByOther(ctx, addr, old, 10*time.Second)
		row.Refused += refused
		if err != nil {
			return fmt.Errorf("round %d: the successor: %w", i+1, err)
		}
		successor = succ
		time.Sleep(time.Duration(rng.Int64N(int64(*window * 8 / 10))))
		if err := syscall.Kill(succ, syscall.SIGKILL); err != nil {
			return fmt.Errorf("round %d: kill %d: %w", i+1, succ, err)
		}
		killed := time.Now()
		for {
			r, err := probe(addr, nil, time.Second)
			if err == nil && r.Pid == old {
				break
			}
			if errors.Is(err, syscall.ECONNREFUSED) {
				row.Refused++
			}
			if time.Since(killed) > 10*time.Second {
				return fmt.Errorf("round %d: the old generation %d did not answer again", i+1, old)
			}
			time.Sleep(200 * time.Microsecond)
		}
		back = append(back, time.Since(killed))
		for { // the killed successor reaped (by the old generation)
			if exited, _ := control.State(succ); exited {
				break
			}
			time.Sleep(time.Millisecond)
		}
		successor = 0
	}
	close(stop)
	for range 2 {
		r := <-results
		if r.err != nil {
			return r.err
		}
		for _, rec := range r.res.Records {
			switch rec.Class {
			case load.OK:
				row.Requests++
			case load.Refused:
				row.Refused++
				row.Failures[rec.Class.String()]++
			default:
				row.Failures[rec.Class.String()]++
			}
		}
	}
	slices.Sort(back)
	q := func(p float64) float64 {
		return float64(back[min(len(back)-1, int(p*float64(len(back))))]) / float64(time.Millisecond)
	}
	row.BackMS = [4]float64{q(0.5), q(0.9), q(0.99), q(1)}
	row.LoadAvg = loadavg()
	fmt.Fprintf(stdout, "| rollbacks | watch window | SIGKILL of the successor → old generation answers p50 / p90 / p99 / max (ms) | requests | failed (cut by the SIGKILLs: connections the successor held) | refused | load avg |\n|--:|--:|--:|--:|--:|--:|--:|\n")
	failed := 0
	for _, n := range row.Failures {
		failed += n
	}
	fmt.Fprintf(stdout, "| %d | %s | %.2f / %.2f / %.2f / %.2f | %d | %d %v | %d | %s |\n",
		row.Rounds, row.Window, row.BackMS[0], row.BackMS[1], row.BackMS[2], row.BackMS[3], row.Requests, failed, row.Failures, row.Refused, row.LoadAvg)
	if err := json.NewEncoder(stdout).Encode(row); err != nil {
		return err
	}
	if row.Refused != 0 {
		return fmt.Errorf("%d connections refused", row.Refused)
	}
	return nil
}

// answeredByOther polls fresh connections until one is answered by a pid
// other than old, and returns that pid and the refused connects seen.
func answeredByOther(ctx context.Context, addr string, old int, limit time.Duration) (int, int, error) {
	deadline := time.Now().Add(limit)
	refused := 0
	for time.Now().Before(deadline) && ctx.Err() == nil {
		r, err := probe(addr, nil, time.Second)
		switch {
		case err == nil && r.Pid != 0 && r.Pid != old:
			return r.Pid, refused, nil
		case errors.Is(err, syscall.ECONNREFUSED):
			refused++
		}
		time.Sleep(200 * time.Microsecond)
	}
	return 0, refused, fmt.Errorf("no answer from a pid other than %d in %v", old, limit)
}

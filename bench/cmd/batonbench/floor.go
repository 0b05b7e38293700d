//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"syscall"
	"time"

	"github.com/batonhq/baton/bench/load"
)

func newReader(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, 4096) }

// floorPoll is the pause between two probes of a starting server.
const floorPoll = 100 * time.Microsecond

// measureFloor starts the server binary n times with no load, each time on
// a fresh port it binds itself, and measures from just before fork-exec to
// the end of its first answer (probed on fresh connections every
// floorPoll). This is the bare cost of bringing up a process of that
// binary; a handoff cannot beat it by much.
func measureFloor(ctx context.Context, b *bins, p *peer, n int) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	for range n {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		addr, err := freeAddr()
		if err != nil {
			return out, err
		}
		cmd := exec.Command(b.path(p.server), p.selfArgs(addr)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		t0 := time.Now()
		if err := cmd.Start(); err != nil {
			return out, fmt.Errorf("floor of %s: %w", p.server, err)
		}
		d, err := firstAnswer(addr, cmd.Process.Pid, t0)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait() // killed on purpose
		if err != nil {
			return out, fmt.Errorf("floor of %s: %w", p.server, err)
		}
		out = append(out, d)
	}
	return out, nil
}

func firstAnswer(addr string, pid int, t0 time.Time) (time.Duration, error) {
	deadline := t0.Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := probe(addr, nil, time.Second)
		if err == nil && (resp.Pid == pid || resp.Pid == 0) {
			return time.Since(t0), nil
		}
		time.Sleep(floorPoll)
	}
	return 0, fmt.Errorf("no answer from pid %d on %s", pid, addr)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func quantMS(q load.Quantiles) map[string]float64 {
	return map[string]float64{"p50": ms(q.P50), "p90": ms(q.P90), "p99": ms(q.P99), "max": ms(q.Max)}
}

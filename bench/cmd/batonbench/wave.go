//go:build linux

package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/batonhq/baton/bench/control"
	"github.com/batonhq/baton/bench/load"
)

// The reconnect wave: many keep-alive clients (-wave-clients, 5000), each
// sending a request every -wave-think (200 ms), and an upgrade every
// 2.5 s. Every client has to reconnect
// to the successor after each upgrade (over TLS, a handshake each); baton
// spreads the drain's closes over a window (HTTPServer.SpreadWindow), the
// baton-nospread peer is the same server without it.
func waveScenarios(scaled func(time.Duration) time.Duration, clients int, think time.Duration) []scenario {
	cfg := load.Config{Clients: clients, Duration: scaled(10 * time.Second), Mode: load.KeepAlive, Think: think, CheckIdle: true, Ramp: 2 * time.Second}
	return []scenario{
		{name: "wave", load: cfg, every: 2500 * time.Millisecond, drainWait: 10 * time.Second, wave: true},
		{name: "wave/tls", load: cfg, every: 2500 * time.Millisecond, drainWait: 10 * time.Second, wave: true, tls: true},
	}
}

// cpuSampler samples the CPU time of every process that answered, every
// cpuWindow, for the peak share of a core any of them used over one
// window after its first answer.
type cpuSampler struct {
	tr   *control.Tracker
	stop chan struct{}
	done chan struct{}

	mu   sync.Mutex
	peak map[int]float64 // pid -> peak share of one core over a window
}

const cpuWindow = 100 * time.Millisecond

func startCPUSampler(tr *control.Tracker) *cpuSampler {
	s := &cpuSampler{tr: tr, stop: make(chan struct{}), done: make(chan struct{}), peak: map[int]float64{}}
	go s.run()
	return s
}

func (s *cpuSampler) run() {
	defer close(s.done)
	type sample struct {
		cpu time.Duration
		at  time.Time
	}
	last := map[int]sample{}
	t := time.NewTicker(cpuWindow)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		for _, pid := range s.tr.Pids() {
			cpu, err := control.CPUTime(pid)
			if err != nil {
				continue
			}
			now := time.Now()
			if l, ok := last[pid]; ok && now.Sub(l.at) >= cpuWindow/2 {
				share := float64(cpu-l.cpu) / float64(now.Sub(l.at))
				if os.Getenv("BATONBENCH_DEBUG_CPU") != "" {
					fmt.Fprintln(os.Stderr, "cpu", pid, cpu, l.cpu, now.Sub(l.at), share)
				}
				s.mu.Lock()
				s.peak[pid] = max(s.peak[pid], share)
				s.mu.Unlock()
			}
			last[pid] = sample{cpu, now}
		}
	}
}

// successorPeak stops the sampler and returns the highest peak of the
// processes that were not the first (the successors), as a share of one
// core, and the median of their peaks.
func (s *cpuSampler) successorPeak(first int) (peak, median float64) {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	var ps []float64
	for pid, p := range s.peak {
		if pid != first {
			ps = append(ps, p)
		}
	}
	if len(ps) == 0 {
		return 0, 0
	}
	slices.Sort(ps)
	return ps[len(ps)-1], ps[len(ps)/2]
}

// warmUp is the start of a run that the steady latency leaves out: the
// clients' first connections (the wave's 5000 ramp up over 2 s), a
// quarter of the run, at most 2.5 s.
func warmUp(res *load.Result) time.Duration {
	return min(res.Elapsed/4, 2500*time.Millisecond)
}

// summarizeWave sets the latency of the fast requests that started during
// a drain, from a trigger to the exit of the generation it replaced (the
// wave of reconnections comes after the handover, the first new answer),
// and the steady latency of those that overlapped no drain.
func summarizeWave(r *row, res *load.Result, ups []control.Upgrade, w *control.Watcher) {
	type span struct{ from, to time.Duration }
	var drains []span
	for _, u := range ups {
		if u.Err != nil || w == nil {
			continue
		}
		if exit, ok := w.Exited(u.Old); ok {
			drains = append(drains, span{u.At.Sub(res.Start), exit.Sub(res.Start)})
		}
	}
	var lat, steady []time.Duration
	for _, rec := range res.Records {
		if rec.Slow {
			continue
		}
		switch {
		case slices.ContainsFunc(drains, func(d span) bool { return rec.Start >= d.from && rec.Start < d.to }):
			lat = append(lat, rec.End-rec.Start)
		case rec.Start >= warmUp(res) && !slices.ContainsFunc(drains, func(d span) bool { return rec.End >= d.from && rec.Start < d.to }):
			steady = append(steady, rec.End-rec.Start)
		}
	}
	if len(lat) > 0 {
		r.FastDrainLatency = quantMS(load.Summarize(lat))
	}
	if len(steady) > 0 {
		// Steady: outside every drain, not only outside the handovers.
		r.FastSteadyLatency = quantMS(load.Summarize(steady))
	}
}

// writeWaveTable prints the reconnect-wave rows.
func writeWaveTable(w io.Writer, rows []*row) bool {
	if !slices.ContainsFunc(rows, func(r *row) bool { return r.Wave }) {
		return false
	}
	fmt.Fprintln(w, "| peer | scenario | clients | requests | failed | conns found closed while idle (replaced) | upgrades ok | handoff p50 (ms) | fast p99 steady / during a drain (ms) | during ÷ steady | successor peak CPU, 100 ms window: max / median (cores) | old gen exits after handover p50 / max (ms) |")
	fmt.Fprintln(w, "|---|---|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|")
	for _, r := range rows {
		if !r.Wave {
			continue
		}
		if r.Skipped != "" {
			fmt.Fprintf(w, "| %s | %s | skipped: %s |||||||||\n", r.Peer, r.Scenario, r.Skipped)
			continue
		}
		steady, over := r.FastSteadyLatency["p99"], r.FastDrainLatency["p99"]
		cells := []string{
			r.Peer, r.Scenario, fmt.Sprint(r.Clients), fmt.Sprint(r.Requests), failedCell(r), fmt.Sprint(r.Replaced),
			dash(r.Upgrades > 0, fmt.Sprintf("%d/%d", r.UpgradesOK, r.Upgrades)),
			dash(r.Handoff != nil, fmt.Sprintf("%.1f", r.Handoff["p50"])),
			fmt.Sprintf("%.1f / %s", steady, dash(r.FastDrainLatency != nil, fmt.Sprintf("%.1f", over))),
			dash(steady > 0 && over > 0, fmt.Sprintf("%.2f", over/steady)),
			dash(r.SuccessorPeakCPU > 0, fmt.Sprintf("%.2f / %.2f", r.SuccessorPeakCPU, r.SuccessorMedianPeakCPU)),
			dash(r.OldLife != nil, fmt.Sprintf("%.0f / %.0f", r.OldLife["p50"], r.OldLife["max"])+aliveNote(r)),
		}
		fmt.Fprintln(w, "| "+strings.Join(cells, " | ")+" |")
	}
	return true
}

// waveContext keeps the wave's sampler between the start and the end of
// runUpgrades.
type waveContext struct {
	cpu *cpuSampler
}

func (wc *waveContext) start(sc scenario, tr *control.Tracker) {
	if sc.wave {
		wc.cpu = startCPUSampler(tr)
	}
}

func (wc *waveContext) finish(r *row, first int) {
	if wc.cpu != nil {
		r.SuccessorPeakCPU, r.SuccessorMedianPeakCPU = wc.cpu.successorPeak(first)
		wc.cpu = nil
	}
}

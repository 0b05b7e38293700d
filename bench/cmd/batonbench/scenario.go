//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/batonhq/baton/bench/control"
	"github.com/batonhq/baton/bench/load"
)

// scenario is one load shape with upgrades.
type scenario struct {
	name string
	load load.Config // Addr, Observe and Stop are set per run
	// every is the period between upgrades; 0 with count set is a soak:
	// upgrades back to back, at most maxDraining old generations alive.
	every          time.Duration
	count          int
	maxDraining    int
	drainWait      time.Duration // how long old generations may take after the load
	sampleProcs    bool          // fd count and RSS at the start and the end
	handoffTimeout time.Duration

	// protocols marks the scenarios of the protocol table (only peers
	// with protocols set run them): tls serves TLS, and probe adds one
	// client of fast requests on fresh connections whose answers tell
	// the controller when a new process serves (the scenario's own
	// clients answer late, or only when a stream reopens).
	protocols bool
	tls       bool
	probe     bool
	// only, when set, lists the peers that run the scenario.
	only []string
	// wave marks the reconnect-wave scenarios (only peers with wave set
	// run them): their table, and the successors' peak CPU.
	wave bool
}

// probeConfig is the probe client of the protocol scenarios.
var probeConfig = load.Config{Clients: 1, Mode: load.NewConn, Think: 2 * time.Millisecond}

// span is a [start, end] pair of a sampled quantity.
type span struct {
	Start int `json:"start"`
	End   int `json:"end"`
}

// row is one peer in one scenario: a JSON line and a table row.
type row struct {
	Date      string  `json:"date"`
	Peer      string  `json:"peer"`
	Server    string  `json:"server,omitempty"` // the binary whose floor applies
	Scenario  string  `json:"scenario"`
	Mode      string  `json:"mode"`
	Clients   int     `json:"clients"`
	DurationS float64 `json:"duration_s"`

	Requests int            `json:"requests"`
	OK       int            `json:"ok"`
	Failed   int            `json:"failed"`
	Failures map[string]int `json:"failures"`
	RPS      float64        `json:"rps"`

	Latency        map[string]float64 `json:"latency_ms,omitempty"`
	OverlapLatency map[string]float64 `json:"overlap_latency_ms,omitempty"`
	OverlapN       int                `json:"overlap_requests"`
	// The same for the fast requests only (no ?ms=N), the table's columns.
	FastLatency        map[string]float64 `json:"fast_latency_ms,omitempty"`
	FastOverlapLatency map[string]float64 `json:"fast_overlap_latency_ms,omitempty"`

	Upgrades      int                `json:"upgrades"`
	UpgradesOK    int                `json:"upgrades_ok"`
	UpgradeErrors []string           `json:"upgrade_errors,omitempty"`
	Handoff       map[string]float64 `json:"handoff_ms,omitempty"`
	FloorMS       float64            `json:"floor_ms,omitempty"`
	FloorRatio    float64            `json:"handoff_p50_over_floor,omitempty"`

	OldLife    map[string]float64 `json:"old_gen_life_after_handover_ms,omitempty"`
	OldLinger  map[string]float64 `json:"old_gen_exit_after_last_answer_ms,omitempty"`
	OldAlive   int                `json:"old_gen_alive_at_end"`
	OldWatched int                `json:"old_gen_watched"`

	ThroughputRatio float64   `json:"throughput_ratio,omitempty"`
	RoundRatios     []float64 `json:"round_ratios,omitempty"`
	// Server CPU time (user+system, every process of the peer) per
	// answered request in the steady state, and its ratio to plain's:
	// unlike throughput, barely moved by the machine's other load.
	CPUPerRequestUS float64 `json:"cpu_per_request_us,omitempty"`
	CPURatio        float64 `json:"cpu_per_request_ratio,omitempty"`

	FD            *span `json:"fd,omitempty"`
	RSSKiB        *span `json:"rss_kib,omitempty"`
	SupervisorFD  *span `json:"supervisor_fd,omitempty"`
	SupervisorRSS *span `json:"supervisor_rss_kib,omitempty"`

	// The protocol scenarios: TLS, the clients' protocol, events over all
	// streams, streams that ended abruptly (also in Failures), HTTP/2
	// connections replaced after a GOAWAY and requests a ClientConn
	// refused unsent, and the probe client's counts.
	TLS           bool           `json:"tls,omitempty"`
	Proto         string         `json:"proto,omitempty"`
	FirstDelayMS  float64        `json:"first_request_delay_ms,omitempty"`
	Events        int            `json:"events,omitempty"`
	AbruptEnds    int            `json:"abrupt_ends,omitempty"`
	Replaced      int            `json:"h2_conns_replaced,omitempty"`
	Unsent        int            `json:"h2_requests_unsent,omitempty"`
	ProbeRequests int            `json:"probe_requests,omitempty"`
	ProbeFailed   int            `json:"probe_failed,omitempty"`
	ProbeFailures map[string]int `json:"probe_failures,omitempty"`
	Protocols     bool           `json:"-"` // a row of the protocol table
	// Median time from the trigger to each stage of the upgrade (ms), from
	// the peer's "upgrade stages" log lines (baton), over StagesN upgrades.
	Stages  map[string]float64 `json:"stages_ms,omitempty"`
	StagesN int                `json:"stages_n,omitempty"`

	// p99 etc. of the fast requests that overlapped no upgrade (after the
	// warm-up); for the reconnect wave, of those that started during a
	// drain (from a trigger to the old generation's exit), and the
	// successors' highest and median peak CPU (share of one core over
	// 100 ms).
	Wave                   bool               `json:"wave,omitempty"`
	FastSteadyLatency      map[string]float64 `json:"fast_steady_latency_ms,omitempty"`
	FastDrainLatency       map[string]float64 `json:"fast_drain_latency_ms,omitempty"`
	SuccessorPeakCPU       float64            `json:"successor_peak_cpu_cores,omitempty"`
	SuccessorMedianPeakCPU float64            `json:"successor_median_peak_cpu_cores,omitempty"`

	Skipped string `json:"skipped,omitempty"`
}

// runUpgrades runs one scenario against one peer.
func runUpgrades(ctx context.Context, env *runEnv, p *peer, sc scenario) (*row, error) {
	r := &row{Date: env.date, Peer: p.name, Server: p.server, Scenario: sc.name, Mode: sc.load.Mode.String(), Clients: sc.load.Clients, Protocols: sc.protocols, Wave: sc.wave}
	if sc.wave {
		r.TLS = sc.tls
	}
	var opts startOpts
	if sc.tls {
		if err := p.supportsTLS(env.bins); err != nil {
			return nil, err
		}
		opts.cert = env.cert
	}
	if sc.protocols {
		r.TLS, r.Proto, r.FirstDelayMS = sc.tls, sc.load.Proto.String(), ms(sc.load.FirstDelay)
		if sc.load.Proto != load.HTTP1 {
			r.Mode = ""
		}
	}
	dir, err := os.MkdirTemp("", "batonbench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(env.results, fmt.Sprintf("%s-%s.log", p.name, strings.ReplaceAll(sc.name, "/", "-")))
	inst, err := start(ctx, env.bins, p, addr, dir, logPath, opts)
	if err != nil {
		return nil, err
	}
	if sc.load.Proto == load.Events {
		if err := checkEvents(addr, inst.tls, 2*time.Second); err != nil {
			inst.kill()
			return nil, err
		}
	}
	tr := control.NewTracker()
	var w *control.Watcher
	if !p.restart {
		w = control.NewWatcher(control.WatcherConfig{Reap: true})
	}
	defer func() {
		var pids []int
		pids = append(pids, tr.Pids()...)
		if w != nil {
			pids = append(pids, w.LivePids()...)
			w.Close()
		}
		inst.kill(pids...)
	}()

	cfg := sc.load
	cfg.Addr = addr
	cfg.Observe = tr.Observe
	cfg.TLS = inst.tls
	stop := make(chan struct{})
	cfg.Stop = stop
	if sc.every == 0 {
		cfg.Duration = time.Hour // ended by stop
	}
	var res, probeRes *load.Result
	loadDone := make(chan error, 2)
	go func() {
		var err error
		res, err = load.Run(ctx, cfg)
		loadDone <- err
	}()
	loads := 1
	if sc.probe {
		loads++
		pcfg := probeConfig
		pcfg.Addr, pcfg.Observe, pcfg.TLS, pcfg.Stop, pcfg.Duration = addr, tr.Observe, inst.tls, stop, cfg.Duration
		go func() {
			var err error
			probeRes, err = load.Run(ctx, pcfg)
			loadDone <- err
		}()
	}
	stopLoad := func() error {
		select {
		case <-stop:
		default:
			close(stop)
		}
		var first error
		for range loads {
			if err := <-loadDone; err != nil && first == nil {
				first = err
			}
		}
		loads = 0
		return first
	}

	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	firstPid, _, err := tr.WaitNew(wctx, 0, time.Time{})
	cancel()
	if err != nil {
		_ = stopLoad()
		return nil, fmt.Errorf("%s: no first answer: %w", p.name, err)
	}
	var wc waveContext
	wc.start(sc, tr)
	sample := func(set func(pid int, fd, rss int), pid int) {
		fd, err1 := control.FDCount(pid)
		rss, err2 := control.RSSKiB(pid)
		if err1 == nil && err2 == nil {
			set(pid, fd, rss)
		}
	}
	const settle = 300 * time.Millisecond
	if sc.sampleProcs {
		time.Sleep(settle)
		sample(func(_, fd, rss int) { r.FD, r.RSSKiB = &span{Start: fd}, &span{Start: rss} }, tr.Current())
		if p.name == "baton-run" {
			sample(func(_, fd, rss int) { r.SupervisorFD, r.SupervisorRSS = &span{Start: fd}, &span{Start: rss} }, inst.supervisor())
		}
	}

	ccfg := control.Config{
		Trigger:     p.trigger(env.bins, inst),
		Tracker:     tr,
		Every:       sc.every,
		Count:       sc.count,
		MaxDraining: sc.maxDraining,
	}
	if p.pidfile != "" {
		ccfg.PidFile = filepath.Join(dir, p.pidfile)
	}
	if p.serial && ccfg.MaxDraining > 0 {
		// It refuses an upgrade while its parent lives, and must have
		// noticed the exit first.
		ccfg.MaxDraining, ccfg.Settle = 1, 5*time.Millisecond
	}
	if sc.count > 0 {
		ccfg.MaxAttempts = sc.count + sc.count/10
	}
	if sc.handoffTimeout > 0 {
		ccfg.HandoffTimeout = sc.handoffTimeout
	}
	if w != nil {
		ccfg.Watcher = w
	}
	if sc.every > 0 {
		ccfg.Until = cfg.Duration - settle
	}
	ups := control.Run(ctx, ccfg)
	wc.finish(r, firstPid)

	if sc.sampleProcs {
		time.Sleep(settle)
		if r.FD != nil {
			sample(func(_, fd, rss int) { r.FD.End, r.RSSKiB.End = fd, rss }, tr.Current())
		}
		if r.SupervisorFD != nil {
			sample(func(_, fd, rss int) { r.SupervisorFD.End, r.SupervisorRSS.End = fd, rss }, inst.supervisor())
		}
	}
	if err := stopLoad(); err != nil {
		return nil, err
	}
	if w != nil {
		dctx, cancel := context.WithTimeout(ctx, sc.drainWait)
		_ = w.WaitAll(dctx) // the ones still alive are reported
		cancel()
	}
	summarize(r, res, ups, w, 0) // the floor ratio is set once the floor is complete
	if sc.protocols {
		summarizeProtocols(r, res, probeRes)
	}
	if sc.wave {
		r.Replaced = res.Replaced
		summarizeWave(r, res, ups, w)
	}
	if env.records {
		if err := writeRecords(filepath.Join(env.results, fmt.Sprintf("%s-%s.records.csv", p.name, strings.ReplaceAll(sc.name, "/", "-"))), res); err != nil {
			return nil, err
		}
	}
	r.Stages, r.StagesN = stageBreakdown(logPath, ups)
	if err := writeUpgrades(filepath.Join(env.results, fmt.Sprintf("%s-%s.upgrades.jsonl", p.name, strings.ReplaceAll(sc.name, "/", "-"))), res.Start, ups, w); err != nil {
		return nil, err
	}
	if r.FD != nil && r.FD.End == 0 {
		r.FD, r.RSSKiB = nil, nil
	}
	return r, nil
}

// summarize fills r from the requests and upgrades of one run.
func summarize(r *row, res *load.Result, ups []control.Upgrade, w *control.Watcher, floor time.Duration) {
	counts := load.Count(res.Records)
	r.Requests, r.OK, r.Failed = counts.Total(), counts[load.OK], counts.Failed()
	r.Failures = counts.Failures()
	r.DurationS = res.Elapsed.Seconds()
	if res.Elapsed > 0 {
		r.RPS = float64(r.OK) / res.Elapsed.Seconds()
	}

	var all, over, fast, fastOver, fastSteady []time.Duration
	lastAnswer := map[int32]time.Duration{}
	done := slices.DeleteFunc(slices.Clone(ups), func(u control.Upgrade) bool { return u.Err != nil })
	sort.Slice(done, func(i, j int) bool { return done[i].At.Before(done[j].At) })
	for _, rec := range res.Records {
		lat := rec.End - rec.Start
		all = append(all, lat)
		if !rec.Slow {
			fast = append(fast, lat)
		}
		if rec.Class == load.OK && rec.End > lastAnswer[rec.Pid] {
			lastAnswer[rec.Pid] = rec.End
		}
		// Overlapping an upgrade: started before its handover, ended
		// after its trigger.
		start, end := res.Start.Add(rec.Start), res.Start.Add(rec.End)
		i := sort.Search(len(done), func(i int) bool { return !done[i].HandedOver().Before(start) })
		if i < len(done) && !done[i].At.After(end) {
			over = append(over, lat)
			if !rec.Slow {
				fastOver = append(fastOver, lat)
			}
		} else if !rec.Slow && rec.Start >= warmUp(res) {
			fastSteady = append(fastSteady, lat)
		}
	}
	r.Latency = quantMS(load.Summarize(all))
	if len(over) > 0 {
		r.OverlapLatency = quantMS(load.Summarize(over))
	}
	r.OverlapN = len(over)
	if len(fast) > 0 {
		r.FastLatency = quantMS(load.Summarize(fast))
	}
	if len(fastOver) > 0 {
		r.FastOverlapLatency = quantMS(load.Summarize(fastOver))
	}
	if len(fastSteady) > 0 {
		r.FastSteadyLatency = quantMS(load.Summarize(fastSteady))
	}

	r.Upgrades, r.UpgradesOK = len(ups), len(done)
	seen := map[string]bool{}
	for _, u := range ups {
		if u.Err != nil && !seen[u.Err.Error()] && len(r.UpgradeErrors) < 3 {
			seen[u.Err.Error()] = true
			r.UpgradeErrors = append(r.UpgradeErrors, u.Err.Error())
		}
	}
	if len(done) == 0 {
		return
	}
	var hand, life, linger []time.Duration
	for _, u := range done {
		hand = append(hand, u.Handoff)
		if w == nil {
			continue
		}
		r.OldWatched++
		exit, ok := w.Exited(u.Old)
		if !ok {
			r.OldAlive++
			continue
		}
		handed := u.HandedOver()
		life = append(life, exit.Sub(handed))
		last := res.Start.Add(lastAnswer[int32(u.Old)])
		if last.Before(handed) {
			last = handed
		}
		linger = append(linger, exit.Sub(last))
	}
	hq := load.Summarize(hand)
	r.Handoff = map[string]float64{"p50": ms(hq.P50), "p90": ms(hq.P90), "max": ms(hq.Max)}
	if floor > 0 {
		r.FloorMS = ms(floor)
		r.FloorRatio = float64(hq.P50) / float64(floor)
	}
	if len(life) > 0 {
		lq, gq := load.Summarize(life), load.Summarize(linger)
		r.OldLife = map[string]float64{"p50": ms(lq.P50), "max": ms(lq.Max)}
		r.OldLinger = map[string]float64{"p50": ms(gq.P50), "max": ms(gq.Max)}
	}
}

// runSteady measures throughput without upgrades. Every peer runs at once
// (idle while not measured); each round loads each peer in turn for
// cfg.Duration, in a rotating order, so that a change in the machine's
// other load hits all peers alike. The ratio is the median over rounds of a
// peer's rate over the plain peer's rate in the same round.
func runSteady(ctx context.Context, env *runEnv, ps []*peer, base *peer, rounds int, cfg load.Config) ([]*row, error) {
	all := append([]*peer{base}, ps...)
	insts := make([]*instance, len(all))
	dir, err := os.MkdirTemp("", "batonbench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	defer func() {
		for _, inst := range insts {
			if inst != nil {
				inst.kill()
			}
		}
	}()
	pids := make([][]int, len(all)) // the processes whose CPU time counts
	for i, p := range all {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		pdir := filepath.Join(dir, p.name)
		if err := os.Mkdir(pdir, 0o755); err != nil {
			return nil, err
		}
		if insts[i], err = start(ctx, env.bins, p, addr, pdir, filepath.Join(env.results, p.name+"-steady.log"), startOpts{}); err != nil {
			return nil, err
		}
		resp, err := probe(addr, nil, time.Second)
		if err != nil {
			return nil, err
		}
		pids[i] = []int{resp.Pid}
		if sup := insts[i].supervisor(); sup != resp.Pid {
			pids[i] = append(pids[i], sup)
		}
	}
	cpu := func(i int) time.Duration {
		var sum time.Duration
		for _, pid := range pids[i] {
			d, err := control.CPUTime(pid)
			if err == nil {
				sum += d
			}
		}
		return sum
	}
	type acc struct {
		merged load.Result
		rates  []float64
		cpu    time.Duration
	}
	accs := make([]acc, len(all))
	for round := -1; round < rounds; round++ { // round -1 warms up, unrecorded
		for k := range all {
			i := (k + max(round, 0)) % len(all)
			c := cfg
			c.Addr = insts[i].addr
			cpu0 := cpu(i)
			res, err := load.Run(ctx, c)
			accs[i].cpu += cpu(i) - cpu0
			if err != nil {
				return nil, err
			}
			if round < 0 {
				continue
			}
			accs[i].merged.Records = append(accs[i].merged.Records, res.Records...)
			accs[i].merged.Elapsed += res.Elapsed
			accs[i].rates = append(accs[i].rates, float64(load.Count(res.Records)[load.OK])/res.Elapsed.Seconds())
		}
	}
	var rows []*row
	for i, p := range all {
		r := &row{Date: env.date, Peer: p.name, Scenario: "steady", Mode: cfg.Mode.String(), Clients: cfg.Clients}
		summarize(r, &accs[i].merged, nil, nil, 0)
		for j, rate := range accs[i].rates {
			r.RoundRatios = append(r.RoundRatios, rate/accs[0].rates[j])
		}
		r.ThroughputRatio = median(r.RoundRatios)
		if r.OK > 0 {
			r.CPUPerRequestUS = float64(accs[i].cpu.Microseconds()) / float64(r.OK)
		}
		rows = append(rows, r)
	}
	for _, r := range rows {
		if rows[0].CPUPerRequestUS > 0 {
			r.CPURatio = r.CPUPerRequestUS / rows[0].CPUPerRequestUS
		}
	}
	return rows, nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// writeUpgrades writes one JSON line per upgrade, for a closer look at a
// run than the table gives.
func writeUpgrades(path string, t0 time.Time, ups []control.Upgrade, w *control.Watcher) error {
	type line struct {
		AtMS      float64 `json:"at_ms"`
		Old       int     `json:"old"`
		New       int     `json:"new,omitempty"`
		HandoffMS float64 `json:"handoff_ms,omitempty"`
		OldExitMS float64 `json:"old_exit_after_handover_ms,omitempty"`
		Err       string  `json:"error,omitempty"`
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	for _, u := range ups {
		l := line{AtMS: ms(u.At.Sub(t0)), Old: u.Old, New: u.New}
		if u.Err != nil {
			l.Err = u.Err.Error()
		} else {
			l.HandoffMS = ms(u.Handoff)
			if w != nil {
				if exit, ok := w.Exited(u.Old); ok {
					l.OldExitMS = ms(exit.Sub(u.HandedOver()))
				}
			}
		}
		_ = enc.Encode(l) // plain values always encode
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// writeRecords writes every request as CSV: start and end in ms since the
// load started, answering pid and generation, class, slow, reused.
func writeRecords(path string, res *load.Result) error {
	var b strings.Builder
	b.WriteString("start_ms,end_ms,pid,generation,class,slow,reused\n")
	recs := slices.Clone(res.Records)
	slices.SortFunc(recs, func(a, b load.Record) int { return int(a.Start - b.Start) })
	for _, r := range recs {
		fmt.Fprintf(&b, "%.3f,%.3f,%d,%d,%s,%t,%t\n", ms(r.Start), ms(r.End), r.Pid, r.Generation, r.Class, r.Slow, r.Reused)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

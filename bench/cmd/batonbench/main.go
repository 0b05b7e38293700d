//go:build linux

// Command batonbench is the driver behind bench/run: it measures zero
// downtime and handoff speed of baton against the alternatives (tableflip as
// its README recommends, `baton run` around a plain go-systemd server, a
// naive stop-and-start restart) side by side in one run, on loopback, and
// prints one markdown table plus one JSON line per peer and scenario.
//
// It expects the peers' binaries in -bin (bench/run builds them); a peer
// whose binary is missing is reported as skipped.
//
// `batonbench drive -addr HOST:PORT [-pidfile FILE]` runs the same
// non-retrying load against one address (a third-party proxy in front of a
// peer, say) while SIGHUP upgrades the process in FILE; bench/nginx-run and
// bench/h2load-run use it. `batonbench cert DIR` writes the benchmark's
// kind of certificate (tlscert) into DIR.
//
// It runs on Linux only (process groups, PR_SET_CHILD_SUBREAPER, /proc):
// its files carry a linux build constraint, so that the module builds
// elsewhere.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/batonhq/baton/bench/load"
	"github.com/batonhq/baton/bench/tlscert"
)

// runEnv is what every scenario shares.
type runEnv struct {
	bins    *bins
	results string
	date    string
	floor   map[string]time.Duration // server binary -> floor p50
	records bool                     // write every request of each run as CSV
	cert    *tlscert.Pair            // this run's certificate, for the TLS scenarios
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "batonbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "drive" {
		return drive(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "scale" {
		return scale(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "rollback" {
		return rollback(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "cert" {
		if len(args) != 2 {
			return errors.New("usage: batonbench cert DIR")
		}
		p, err := tlscert.Write(args[1])
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(stdout, p.CertFile, p.KeyFile)
		return err
	}
	fs := flag.NewFlagSet("batonbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	binDir := fs.String("bin", "bin", "`dir`ectory with the peers' binaries")
	results := fs.String("results", "results", "`dir`ectory for the table, the JSON lines and the peers' logs")
	scale := fs.Float64("scale", 1, "multiply every load duration by `f` (2 doubles the run)")
	soak := fs.Int("soak", 1000, "consecutive upgrades in the soak")
	rounds := fs.Int("rounds", 30, "interleaved rounds of the steady-state comparison")
	floorN := fs.Int("floor", 40, "starts per binary for the fork-exec floor (half before the scenarios, half after)")
	peerList := fs.String("peers", "baton,baton-reload,baton-nospread,baton-run,tableflip,naive", "comma-separated `peers`")
	scenList := fs.String("scenarios", "steady,upgrade/keep-alive,upgrade/new-conn,saturated/keep-alive,saturated/new-conn,long-drain,soak,late-first-request,late-first-request/tls,h2,sse,wave,wave/tls", "comma-separated `scenarios`")
	root := fs.String("gobench", "", "repository `root` in which to run the core's Go benchmarks (none when empty)")
	benchtime := fs.String("benchtime", "200ms", "-benchtime of the Go benchmarks")
	label := fs.String("label", "", "free `text` for the table's first line (bench/run passes the commit)")
	waveClients := fs.Int("wave-clients", 5000, "keep-alive clients of the reconnect-wave scenarios")
	waveThink := fs.Duration("wave-think", 200*time.Millisecond, "pause of each wave client between two requests")
	records := fs.Bool("records", false, "also write every request of each upgrade run as CSV (large)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *scale <= 0 {
		return errors.New("-scale must be positive")
	}
	if err := os.MkdirAll(*results, 0o755); err != nil {
		return err
	}
	// Successors re-parent to us when their parent exits: be their
	// subreaper, so their exits are seen and reaped here.
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		return fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %w", errno)
	}

	// This run's logs and per-run files replace the previous run's.
	for _, pat := range []string{"*.log", "*.upgrades.jsonl", "*.records.csv"} {
		old, _ := filepath.Glob(filepath.Join(*results, pat))
		for _, f := range old {
			_ = os.Remove(f) // best effort: a stale file only misleads
		}
	}

	// The TLS scenarios' certificate: made for this run, removed after it.
	certDir, err := os.MkdirTemp("", "batonbench-tls-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(certDir)
	cert, err := tlscert.Write(certDir)
	if err != nil {
		return err
	}

	t0 := time.Now()
	load0 := loadavg()
	stamp := t0.UTC().Format("20060102T150405Z")
	env := &runEnv{bins: &bins{dir: *binDir}, results: *results, date: t0.UTC().Format("2006-01-02"), floor: map[string]time.Duration{}, records: *records, cert: cert}
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "[%5.1fs] %s\n", time.Since(t0).Seconds(), fmt.Sprintf(format, a...))
	}
	scaled := func(d time.Duration) time.Duration { return time.Duration(float64(d) * *scale) }

	all := peers()
	byName := map[string]*peer{}
	for _, p := range all {
		byName[p.name] = p
	}
	var active []*peer
	var rows []*row
	wanted := split(*scenList)
	for _, name := range split(*peerList) {
		p := byName[name]
		if p == nil {
			return fmt.Errorf("unknown peer %q", name)
		}
		if err := p.missing(env.bins); err != nil {
			logf("skip %s: %v", name, err)
			rows = append(rows, &row{Date: env.date, Peer: name, Scenario: "all", Skipped: err.Error()})
			continue
		}
		active = append(active, p)
	}
	plain := byName["plain"]
	if err := plain.missing(env.bins); err != nil {
		return err
	}

	// The floor of every server binary in use: half the starts now, half
	// after the scenarios, so that the machine's load at one moment does
	// not set it.
	floorPeers := map[string][]string{} // server binary -> peers
	var servers []string
	floorSamples := map[string][]time.Duration{}
	for _, p := range append(slices.Clone(active), plain) {
		if _, ok := floorPeers[p.server]; !ok {
			servers = append(servers, p.server)
		}
		if !slices.Contains(floorPeers[p.server], p.name) {
			floorPeers[p.server] = append(floorPeers[p.server], p.name)
		}
	}
	measureFloors := func(n int) error {
		for _, server := range servers {
			p := byName[floorPeers[server][0]]
			ds, err := measureFloor(ctx, env.bins, p, n)
			if err != nil {
				return err
			}
			floorSamples[server] = append(floorSamples[server], ds...)
			env.floor[server] = load.Summarize(slices.Clone(floorSamples[server])).P50
			logf("floor %s: p50 %.2f ms over %d starts", server, ms(env.floor[server]), len(floorSamples[server]))
		}
		return nil
	}
	if err := measureFloors((*floorN + 1) / 2); err != nil {
		return err
	}

	scenarios := []scenario{
		{
			name:      "upgrade/keep-alive",
			load:      load.Config{Clients: 8, Duration: scaled(20 * time.Second), Mode: load.KeepAlive, SlowShare: 0.02, SlowMS: 50, Think: time.Millisecond},
			every:     400 * time.Millisecond,
			drainWait: 10 * time.Second,
		},
		{
			name:      "upgrade/new-conn",
			load:      load.Config{Clients: 8, Duration: scaled(20 * time.Second), Mode: load.NewConn, SlowShare: 0.02, SlowMS: 50, Think: time.Millisecond},
			every:     400 * time.Millisecond,
			drainWait: 10 * time.Second,
		},
		{
			name:      "long-drain",
			load:      load.Config{Clients: 8, SlowClients: 8, Duration: scaled(10 * time.Second), Mode: load.KeepAlive, SlowMS: 1000, Think: time.Millisecond},
			every:     300 * time.Millisecond,
			drainWait: 10 * time.Second,
		},
		// The saturation: 32 clients without think time, 1 % of
		// requests ?ms=100; baton against tableflip.
		{
			name:      "saturated/keep-alive",
			load:      load.Config{Clients: 32, Duration: scaled(10 * time.Second), Mode: load.KeepAlive, SlowShare: 0.01, SlowMS: 100},
			every:     400 * time.Millisecond,
			drainWait: 10 * time.Second,
			only:      []string{"baton", "tableflip"},
		},
		{
			name:      "saturated/new-conn",
			load:      load.Config{Clients: 32, Duration: scaled(10 * time.Second), Mode: load.NewConn, SlowShare: 0.01, SlowMS: 100},
			every:     400 * time.Millisecond,
			drainWait: 10 * time.Second,
			only:      []string{"baton", "tableflip"},
		},
		{
			name:           "soak",
			load:           load.Config{Clients: 4, Mode: load.KeepAlive, SlowShare: 0.01, SlowMS: 20, Think: time.Millisecond},
			count:          *soak,
			maxDraining:    4,
			drainWait:      35 * time.Second,
			sampleProcs:    true,
			handoffTimeout: 500 * time.Millisecond,
		},
	}
	scenarios = append(scenarios, protocolScenarios(scaled)...)
	scenarios = append(scenarios, waveScenarios(scaled, *waveClients, *waveThink)...)

	for _, name := range wanted {
		if name == "steady" {
			var ps []*peer
			for _, p := range active {
				if p.server != plain.server && p.name != "baton-reload" && !p.waveOnly {
					ps = append(ps, p)
				}
			}
			cfg := load.Config{Clients: 8, Duration: scaled(250 * time.Millisecond), Mode: load.KeepAlive}
			logf("steady: %d rounds of %v per peer", *rounds, cfg.Duration)
			rs, err := runSteady(ctx, env, ps, plain, *rounds, cfg)
			if err != nil {
				return fmt.Errorf("steady: %w", err)
			}
			for _, r := range rs {
				logf("steady %s: %.0f req/s, median ratio %.3f", r.Peer, r.RPS, r.ThroughputRatio)
			}
			rows = append(rows, rs...)
			continue
		}
		i := slices.IndexFunc(scenarios, func(s scenario) bool { return s.name == name })
		if i < 0 {
			return fmt.Errorf("unknown scenario %q", name)
		}
		sc := scenarios[i]
		for _, p := range active {
			if !p.upgrades || (p.restart && sc.name == "soak") {
				continue
			}
			if p.name == "baton-reload" && !strings.HasPrefix(sc.name, "upgrade/") {
				continue
			}
			if sc.protocols && !p.protocols || sc.wave != p.wave && (sc.wave || p.waveOnly) || sc.only != nil && !slices.Contains(sc.only, p.name) {
				continue
			}
			logf("%s %s ...", p.name, sc.name)
			r, err := runUpgrades(ctx, env, p, sc)
			if err != nil {
				if ctx.Err() != nil {
					return err
				}
				logf("%s %s: %v", p.name, sc.name, err)
				rows = append(rows, &row{Date: env.date, Peer: p.name, Scenario: sc.name, Skipped: err.Error(), Protocols: sc.protocols})
				continue
			}
			logf("%s %s: %d requests, %d failed %v, %d/%d upgrades, handoff p50 %.1f ms", p.name, sc.name, r.Requests, r.Failed, r.Failures, r.UpgradesOK, r.Upgrades, r.Handoff["p50"])
			if sc.protocols {
				logf("%s %s: %d events, %d abrupt ends, %d h2 conns replaced, %d unsent; probe %d requests, %d failed %v", p.name, sc.name, r.Events, r.AbruptEnds, r.Replaced, r.Unsent, r.ProbeRequests, r.ProbeFailed, r.ProbeFailures)
			}
			rows = append(rows, r)
		}
	}

	if err := measureFloors(*floorN / 2); err != nil {
		return err
	}
	var floors []*floorRow
	for _, server := range servers {
		q := load.Summarize(floorSamples[server])
		floors = append(floors, &floorRow{Date: env.date, Kind: "floor", Server: server, Peers: floorPeers[server], N: q.N, MS: quantMS(q)})
	}
	for _, r := range rows {
		if f := env.floor[r.Server]; f > 0 && r.Handoff != nil {
			r.FloorMS = ms(f)
			r.FloorRatio = r.Handoff["p50"] / r.FloorMS
		}
	}

	var benches []*benchRow
	if *root != "" {
		logf("Go benchmarks (-benchtime %s)", *benchtime)
		benches = runGoBenchmarks(ctx, *root, *benchtime, env.date)
	}
	slices.SortStableFunc(rows, func(a, b *row) int { return peerOrder(all, a.Peer) - peerOrder(all, b.Peer) })

	var table strings.Builder
	fmt.Fprintf(&table, "baton bench, %s, %d cores, %.0f s, load average %s at the start and %s at the end", env.date, runtime.NumCPU(), time.Since(t0).Seconds(), load0, loadavg())
	if *label != "" {
		fmt.Fprintf(&table, ", %s", *label)
	}
	table.WriteString("\n\n")
	if writeTable(&table, rows) {
		table.WriteString("\n")
	}
	if writeProtocolTable(&table, rows) {
		table.WriteString("\n")
	}
	if writeWaveTable(&table, rows) {
		table.WriteString("\n")
	}
	if writeStages(&table, rows) {
		table.WriteString("\n")
	}
	writeFloors(&table, floors)
	if len(benches) > 0 {
		table.WriteString("\n")
		writeBenches(&table, benches)
	}
	var lines strings.Builder
	enc := json.NewEncoder(&lines)
	for _, r := range rows {
		_ = enc.Encode(r) // a row always encodes
	}
	for _, f := range floors {
		_ = enc.Encode(f)
	}
	for _, b := range benches {
		_ = enc.Encode(b)
	}
	if err := os.WriteFile(filepath.Join(*results, stamp+".md"), []byte(table.String()), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*results, stamp+".jsonl"), []byte(lines.String()), 0o644); err != nil {
		return err
	}
	_, err = io.WriteString(stdout, table.String()+"\n"+lines.String())
	logf("done; results in %s/%s.{md,jsonl}", *results, stamp)
	return err
}

// prSetChildSubreaper is PR_SET_CHILD_SUBREAPER from linux/prctl.h.
const prSetChildSubreaper = 36

func split(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func peerOrder(all []*peer, name string) int {
	for i, p := range all {
		if p.name == name {
			return i
		}
	}
	return len(all)
}

// loadavg is the 1-minute load average, "?" when unknown.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/batonhq/baton/bench/control"
	"github.com/batonhq/baton/bench/load"
)

// scaleRow is one line of `batonbench scale`: one size of idle
// keep-alive connections held by baton's examples/http, then one SIGHUP.
type scaleRow struct {
	Conns        int     `json:"conns"`
	SpreadWindow string  `json:"spread_window"`
	ExitMS       float64 `json:"old_exit_after_sighup_ms"`
	DrainCPUMS   float64 `json:"drain_cpu_ms"`    // the old generation's CPU from SIGHUP to its exit
	CPUPerConnUS float64 `json:"cpu_per_conn_us"` // DrainCPUMS per connection
	RSSIdleMiB   float64 `json:"rss_before_conns_mib"`
	RSSConnsMiB  float64 `json:"rss_with_conns_mib"`
	RSSPerConnKB float64 `json:"rss_per_conn_kib"`
	// Client-side closes, ms after the SIGHUP: first, p10, p50, p90, last.
	Closes [5]float64 `json:"closes_ms"`
	// From the old generation's stage line: fork+exec of the successor,
	// and SIGHUP to the successor told it is main.
	SpawnMS   float64 `json:"spawn_ms,omitempty"`
	HandoffMS float64 `json:"sighup_to_main_sent_ms,omitempty"`
	Lost      int     `json:"lost"` // connections that got data or an error instead of EOF
	LoadAvg   string  `json:"loadavg"`
	NoFile    uint64  `json:"rlimit_nofile"`
	ExitCode  int     `json:"old_exit_code"`
}

// scale measures how the drain grows with the number of connections: for
// each size, examples/http with that many idle keep-alive connections
// (each has made one request), one SIGHUP, then the old generation's exit
// time, its CPU time from the SIGHUP to its exit (getrusage of the child
// minus /proc/PID/stat at the SIGHUP), its RSS per connection, and when
// the clients saw their connections close.
func scale(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("batonbench scale", flag.ContinueOnError)
	fs.SetOutput(stderr)
	binDir := fs.String("bin", "results/bin", "`dir`ectory with examples/http built as http")
	sizes := fs.String("n", "1000,5000,10000,18000", "comma-separated connection `counts`")
	spread := fs.String("spread-window", "0", "examples/http's -spread-window, a duration (comma-separated: one run per value; -1s: no spreading)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	lim.Cur = lim.Max // children inherit it: Go then leaves it alone
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("raise RLIMIT_NOFILE: %w", err)
	}
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		return fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %w", errno)
	}
	b := &bins{dir: *binDir}
	if !b.has("http") {
		return fmt.Errorf("%w: %s", errMissing, b.path("http"))
	}
	fmt.Fprintf(stdout, "| idle conns | spread window | old gen exits after SIGHUP (ms) | drain CPU (ms) | CPU per conn (µs) | RSS before → with conns (MiB) | RSS per conn (KiB) | client closes first / p10 / p50 / p90 / last (ms) | successor fork+exec / SIGHUP → main sent (ms) | lost | load avg |\n|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	var rows []scaleRow
	for _, sw := range split(*spread) {
		for _, ns := range split(*sizes) {
			n, err := strconv.Atoi(ns)
			if err != nil || n <= 0 {
				return fmt.Errorf("scale: bad count %q", ns)
			}
			if uint64(n)+64 > lim.Max {
				fmt.Fprintf(stderr, "scale: %d connections need more than RLIMIT_NOFILE %d: skipped\n", n, lim.Max)
				continue
			}
			r, err := scaleOne(ctx, b, n, sw)
			if err != nil {
				return fmt.Errorf("scale %d: %w", n, err)
			}
			r.NoFile = lim.Max
			rows = append(rows, r)
			fmt.Fprintf(stdout, "| %d | %s | %.0f | %.0f | %.1f | %.1f → %.1f | %.2f | %.0f / %.0f / %.0f / %.0f / %.0f | %.1f / %.1f | %d | %s |\n",
				r.Conns, r.SpreadWindow, r.ExitMS, r.DrainCPUMS, r.CPUPerConnUS, r.RSSIdleMiB, r.RSSConnsMiB, r.RSSPerConnKB,
				r.Closes[0], r.Closes[1], r.Closes[2], r.Closes[3], r.Closes[4], r.SpawnMS, r.HandoffMS, r.Lost, r.LoadAvg)
		}
	}
	enc := json.NewEncoder(stdout)
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return nil
}

func scaleOne(ctx context.Context, b *bins, n int, spread string) (scaleRow, error) {
	row := scaleRow{Conns: n, SpreadWindow: spread}
	dir, err := os.MkdirTemp("", "batonbench-scale-")
	if err != nil {
		return row, err
	}
	defer os.RemoveAll(dir)
	addr, err := freeAddr()
	if err != nil {
		return row, err
	}
	lf, err := os.Create(filepath.Join(dir, "http.log"))
	if err != nil {
		return row, err
	}
	inst := &instance{
		b: b, log: lf, addr: addr, dir: dir,
		argv: []string{"http", "-listen", addr, "-pidfile", filepath.Join(dir, "http.pid"), "-spread-window", spread},
	}
	inst.argv = append(inst.argv, b.debugLog("http")...)
	if err := inst.spawn(); err != nil {
		lf.Close()
		return row, err
	}
	var successor int
	defer func() { inst.kill(successor) }()
	if err := waitServing(ctx, addr, nil, 10*time.Second); err != nil {
		out, _ := os.ReadFile(lf.Name())
		return row, fmt.Errorf("examples/http not serving: %w (its log: %q)", err, lastLine(string(out)))
	}
	pid := inst.cmd.Process.Pid
	time.Sleep(100 * time.Millisecond) // settle
	rss0, err := control.RSSKiB(pid)
	if err != nil {
		return row, err
	}

	conns := make([]net.Conn, n)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		dialErr error
	)
	next := make(chan int)
	for range 64 {
		wg.Go(func() {
			for i := range next {
				c, err := scaleConn(addr)
				if err != nil {
					mu.Lock()
					dialErr = errors.Join(dialErr, err)
					mu.Unlock()
					continue
				}
				conns[i] = c
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	if dialErr != nil {
		return row, dialErr
	}
	time.Sleep(200 * time.Millisecond)
	rss1, err := control.RSSKiB(pid)
	if err != nil {
		return row, err
	}
	row.RSSIdleMiB, row.RSSConnsMiB = float64(rss0)/1024, float64(rss1)/1024
	row.RSSPerConnKB = float64(rss1-rss0) / float64(n)

	closes := make([]time.Duration, n)
	lost := make([]bool, n)
	start := make(chan struct{})
	var t0 time.Time
	for i, c := range conns {
		wg.Go(func() {
			var buf [1]byte
			_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
			<-start
			_, err := c.Read(buf[:])
			closes[i] = time.Since(t0)
			lost[i] = !errors.Is(err, io.EOF)
		})
	}
	cpu0, err := control.CPUTime(pid)
	if err != nil {
		return row, err
	}
	t0 = time.Now()
	close(start)
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		return row, err
	}
	werr := inst.cmd.Wait()
	exit := time.Since(t0)
	st := inst.cmd.ProcessState
	inst.cmd = nil // reaped: kill signals the successor only
	if st == nil {
		return row, fmt.Errorf("wait: %w", werr)
	}
	ru := st.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano()+ru.Stime.Nano()) - cpu0
	row.ExitCode = st.ExitCode()
	row.ExitMS = float64(exit) / float64(time.Millisecond)
	row.DrainCPUMS = float64(cpu) / float64(time.Millisecond)
	row.CPUPerConnUS = float64(cpu) / float64(time.Microsecond) / float64(n)
	wg.Wait()
	for _, l := range lost {
		if l {
			row.Lost++
		}
	}
	slices.Sort(closes)
	for i, q := range []float64{0, 0.1, 0.5, 0.9, 1} {
		row.Closes[i] = float64(closes[min(int(q*float64(n)), n-1)]) / float64(time.Millisecond)
	}
	row.LoadAvg = loadavg()
	if pred, _, err := readStages(lf.Name()); err == nil {
		if t := pred[pid].t; t["started"] > 0 && t["main_sent"] > 0 {
			row.SpawnMS = float64(t["started"]-t["upgrade"]) / 1e6
			row.HandoffMS = float64(t["main_sent"]-t["signal"]) / 1e6
		}
	}
	if p, err := control.ReadPidfile(filepath.Join(dir, "http.pid")); err == nil && p != pid {
		successor = p
	}
	return row, nil
}

// scaleConn opens one keep-alive connection and makes one request on it,
// so that the server holds it idle.
func scaleConn(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(load.AppendRequest(nil, "/", false)); err != nil {
		c.Close()
		return nil, err
	}
	r, err := load.ReadResponse(newReader(c))
	if err != nil || r.Status != 200 || r.Close {
		c.Close()
		return nil, fmt.Errorf("first request: status %d close %v: %w", r.Status, r.Close, err)
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

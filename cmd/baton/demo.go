package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/batonhq/baton/internal/control"
	"github.com/batonhq/baton/internal/rawhttp"
)

const demoUsage = `
baton demo [--upgrades N] [--clients C] [--mode handoff|run] [--json]

Shows a zero-downtime upgrade in one command, with nothing but this
repository: builds examples/http (into the user cache directory, re-used
while it is up to date), starts it on a free loopback port, drives
concurrent load (half the clients keep their connection alive, half open a
new connection for every request), upgrades it N times through the control
channel ('baton reload'), plus once with a deliberately broken new version
(a binary that exits at start) that must be rolled back while the old
process keeps serving, and prints requests, failed requests, upgrades,
handoff latency (from the reload request to the first response from the
new process) and how long the old processes took to exit.

--mode handoff (the default) runs the example alone: it upgrades itself
with package handoff. --mode run runs it under 'baton run', which holds
the socket and replaces the process.

Run it from the repository: go run ./cmd/baton demo

Exit status: 0 when every request succeeded, every upgrade worked and the
broken one was rolled back; 1 otherwise.

Linux only: on other systems baton demo exits 1 at once ("baton demo: not
supported on darwin: ...").`

type demoCommand struct {
	io       stdio
	flags    *flagSet
	upgrades int
	clients  int
	mode     string
	json     bool
}

func newDemoCmd(io stdio) command {
	c := &demoCommand{io: io, flags: newFlagSet("demo", demoUsage, io.Stdout)}
	c.flags.IntVar(&c.upgrades, "upgrades", 20, "successful upgrades to perform")
	c.flags.IntVar(&c.clients, "clients", 8, "concurrent clients")
	c.flags.StringVar(&c.mode, "mode", "handoff", "handoff (the example upgrades itself) or run (under baton run)")
	c.flags.BoolVar(&c.json, "json", false, "print the results as JSON on stdout (progress goes to stderr)")
	return c
}

// demoResult is the output of --json.
type demoResult struct {
	Mode           string    `json:"mode"`
	Addr           string    `json:"addr"`
	Clients        int       `json:"clients"`
	Requests       int64     `json:"requests"`
	Failed         int64     `json:"failed"`
	Errors         []string  `json:"errors,omitempty"` // the first few
	Upgrades       int       `json:"upgrades"`
	UpgradesFailed int       `json:"upgrades_failed"` // good versions that did not take over
	PIDs           []int     `json:"pids"`            // serving pids, first to last
	BrokenRolled   bool      `json:"broken_rolled_back"`
	BrokenError    string    `json:"broken_error"`
	HandoffMS      summaryMS `json:"handoff_ms"`
	OldExitMS      summaryMS `json:"old_exit_ms"`
	Seconds        float64   `json:"seconds"`
	OK             bool      `json:"ok"`
}

type summaryMS struct {
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

func summarize(ds []time.Duration) summaryMS {
	if len(ds) == 0 {
		return summaryMS{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return summaryMS{Min: ms(s[0]), Median: ms(med), Max: ms(s[len(s)-1]), N: len(s)}
}

func (c *demoCommand) Run(ctx context.Context, args []string) error {
	if err := c.flags.parse(args); err != nil {
		return err
	}
	if err := c.flags.noArgs(); err != nil {
		return err
	}
	if c.upgrades < 0 || c.clients < 1 {
		return usagef("demo", "want --upgrades >= 0 and --clients >= 1")
	}
	if c.mode != "handoff" && c.mode != "run" {
		return usagef("demo", "--mode=%q: want handoff or run", c.mode)
	}
	progress := c.io.Stdout
	if c.json {
		progress = c.io.Stderr
	}
	d := &demo{cmd: c, out: progress, start: time.Now()}
	defer d.cleanup()
	res, err := d.run(ctx)
	if err != nil {
		return err
	}
	if c.json {
		if err := json.NewEncoder(c.io.Stdout).Encode(res); err != nil {
			return err
		}
	} else {
		printDemo(c.io.Stdout, res)
	}
	if !res.OK {
		return &exitError{code: exitFailure, err: errors.New("demo: not every request or upgrade succeeded (see above)")}
	}
	return nil
}

// demo is one run of baton demo.
type demo struct {
	cmd   *demoCommand
	out   io.Writer
	start time.Time
	work  string // per-run directory: the served binary, the server's log
	bin   string // work/http, the path the server runs and upgrades from
	good  string // the cached good build
	srv   *exec.Cmd
	log   *os.File

	srvExited chan struct{} // closed when srv has been waited for
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, format+"\n", args...)
}

func (d *demo) run(ctx context.Context) (*demoResult, error) {
	if err := d.build(ctx); err != nil {
		return nil, err
	}
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	res := &demoResult{Mode: d.cmd.mode, Addr: addr, Clients: d.cmd.clients}
	target, serving, err := d.startServer(ctx, addr)
	if err != nil {
		return nil, err
	}
	res.PIDs = append(res.PIDs, serving)
	d.say("serving on http://%s/ (pid %d, mode %s); %d clients: %d keep-alive, %d new connection per request",
		addr, serving, d.cmd.mode, d.cmd.clients, (d.cmd.clients+1)/2, d.cmd.clients/2)

	l := startDemoLoad(addr, d.cmd.clients)
	var handoffs, exits []time.Duration
	var exitMu sync.Mutex
	var exitWG sync.WaitGroup
	broken := d.cmd.upgrades / 2
	for i := 0; i <= d.cmd.upgrades; i++ {
		if ctx.Err() != nil {
			break
		}
		l.await(30)
		if i == broken {
			d.brokenUpgrade(ctx, target, serving, l, res)
			l.await(30)
		}
		if i == d.cmd.upgrades {
			break
		}
		old := serving
		exited := watchExit(old)
		t0 := time.Now()
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		pid, err := control.Reload(rctx, target)
		cancel()
		if err != nil {
			res.UpgradesFailed++
			d.say("upgrade %2d/%d  FAILED: %v", i+1, d.cmd.upgrades, err)
			exited.stop()
			// Go on with whichever process answers now.
			if pid, ok := l.lastPIDAfter(time.Now(), 10*time.Second); ok {
				serving = pid
				if d.cmd.mode == "handoff" {
					target = pid
				}
			}
			continue
		}
		reloaded := time.Since(t0)
		first, ok := l.firstFrom(pid, 10*time.Second)
		handoff := first.Sub(t0)
		if !ok {
			handoff = 0
		} else {
			handoffs = append(handoffs, handoff)
		}
		res.Upgrades++
		res.PIDs = append(res.PIDs, pid)
		if d.cmd.mode == "handoff" {
			target = pid
		}
		serving = pid
		exitWG.Add(1)
		go func() {
			defer exitWG.Done()
			if at, ok := exited.wait(30 * time.Second); ok {
				exitMu.Lock()
				exits = append(exits, at.Sub(t0.Add(reloaded)))
				exitMu.Unlock()
			}
		}()
		d.say("upgrade %2d/%d  pid %d -> %d  reload answered in %s, first response from pid %d after %s",
			i+1, d.cmd.upgrades, old, pid, ms(reloaded), pid, ms(handoff))
	}
	l.await(30)
	l.stop()
	exitWG.Wait()
	d.stopServer(serving)

	res.Requests, res.Failed = l.ok.Load()+l.failed.Load(), l.failed.Load()
	res.Errors = l.errors()
	res.HandoffMS, res.OldExitMS = summarize(handoffs), summarize(exits)
	res.Seconds = time.Since(d.start).Seconds()
	res.OK = res.Failed == 0 && res.UpgradesFailed == 0 && res.BrokenRolled && res.Upgrades == d.cmd.upgrades
	return res, nil
}

// build compiles examples/http into the cache (go build re-uses its cache
// when nothing changed) and copies it into a fresh work directory.
func (d *demo) build(ctx context.Context) error {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	if err != nil || strings.TrimSpace(string(gomod)) == "" || !fileExists(filepath.Join(root, "examples", "http", "main.go")) {
		return errors.New("demo: run it inside the baton repository (it builds examples/http with the go command): go run ./cmd/baton demo")
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "baton-demo")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	d.good = filepath.Join(dir, "http")
	t0 := time.Now()
	b := exec.CommandContext(ctx, "go", "build", "-o", d.good, "./examples/http")
	b.Dir = root
	if out, err := b.CombinedOutput(); err != nil {
		return fmt.Errorf("demo: go build ./examples/http: %w\n%s", err, out)
	}
	d.say("built examples/http in %s (%s)", time.Since(t0).Round(time.Millisecond), d.good)
	d.work, err = os.MkdirTemp("", "baton-demo-")
	if err != nil {
		return err
	}
	d.bin = filepath.Join(d.work, "http")
	return d.install(d.good)
}

// install puts a copy of src at d.bin by rename, as a deployment does.
func (d *demo) install(src string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	tmp := d.bin + ".new"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, d.bin)
}

// startServer starts the example (alone or under baton run) and returns
// the pid to send reloads to and the pid serving.
func (d *demo) startServer(ctx context.Context, addr string) (target, serving int, err error) {
	d.log, err = os.Create(filepath.Join(d.work, "server.log"))
	if err != nil {
		return 0, 0, err
	}
	switch d.cmd.mode {
	case "handoff":
		d.srv = exec.Command(d.bin, "-listen", addr)
	case "run":
		self, err := os.Executable()
		if err != nil {
			return 0, 0, err
		}
		d.srv = exec.Command(self, "run", "--quiet", "--drain", "10s", "--ready-timeout", "10s",
			"--listen", "http=tcp://"+addr, "--", d.bin, "-listen", addr)
	}
	d.srv.Stdout, d.srv.Stderr = d.log, d.log
	d.srv.Env = withoutSystemdEnv(os.Environ())
	if err := d.srv.Start(); err != nil {
		return 0, 0, fmt.Errorf("demo: start server: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = d.srv.Wait(); close(exited) }()
	d.srvExited = exited
	c := &http.Client{Timeout: time.Second}
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return 0, 0, fmt.Errorf("demo: server exited at start; its log:\n%s", d.serverLog())
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		resp, err := c.Get("http://" + addr + "/")
		if err != nil {
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		pid, _ := strconv.Atoi(resp.Header.Get("X-Pid"))
		if d.cmd.mode == "run" {
			return d.srv.Process.Pid, pid, nil
		}
		return pid, pid, nil
	}
	return 0, 0, fmt.Errorf("demo: server not answering after 15s; its log:\n%s", d.serverLog())
}

// brokenUpgrade installs a binary that exits at start, asks for an
// upgrade, expects it to fail with the old process still serving, and
// installs the good binary again.
func (d *demo) brokenUpgrade(ctx context.Context, target, serving int, l *demoLoad, res *demoResult) {
	script := filepath.Join(d.work, "broken")
	_ = os.WriteFile(script, []byte("#!/bin/sh\necho 'broken build: exiting at start' >&2\nexit 3\n"), 0o755)
	if err := d.install(script); err != nil {
		res.BrokenError = err.Error()
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	pid, err := control.Reload(rctx, target)
	cancel()
	if ierr := d.install(d.good); ierr != nil {
		d.say("reinstalling the good binary: %v", ierr)
	}
	if err == nil {
		res.BrokenError = fmt.Sprintf("the broken version was accepted (pid %d)", pid)
		d.say("broken upgrade: NOT rolled back: %s", res.BrokenError)
		return
	}
	res.BrokenError = err.Error()
	// Still the old process? Ask until a response comes after the failure.
	after := time.Now()
	got, ok := l.lastPIDAfter(after, 10*time.Second)
	res.BrokenRolled = ok && got == serving
	d.say("broken upgrade (a binary that exits with status 3 at start): rolled back, pid %d still serving\n    reason: %v",
		got, err)
}

// signalPID sends sig to pid, which need not be a child.
func signalPID(pid int, sig os.Signal) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	defer func() { _ = p.Release() }()
	return p.Signal(sig)
}

func (d *demo) stopServer(serving int) {
	if d.srv == nil {
		return
	}
	// The example stops gracefully on SIGTERM; the one serving may not be
	// the process started (handoff mode).
	target := serving
	if d.cmd.mode == "run" {
		target = d.srv.Process.Pid
	}
	gone := watchExit(target)
	_ = signalPID(target, syscall.SIGTERM)
	if _, ok := gone.wait(15 * time.Second); !ok {
		_ = signalPID(target, os.Kill)
	}
	select {
	case <-d.srvExited:
	case <-time.After(15 * time.Second):
		_ = d.srv.Process.Kill()
		<-d.srvExited
	}
	d.srv = nil
}

func (d *demo) cleanup() {
	if d.srv != nil {
		_ = d.srv.Process.Kill()
		<-d.srvExited
	}
	if d.log != nil {
		_ = d.log.Close()
	}
	if d.work != "" {
		_ = os.RemoveAll(d.work)
	}
}

func (d *demo) serverLog() string {
	b, _ := os.ReadFile(filepath.Join(d.work, "server.log"))
	return string(b)
}

func printDemo(w io.Writer, r *demoResult) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "requests\t%d (%d clients)\n", r.Requests, r.Clients)
	fmt.Fprintf(tw, "failed requests\t%d\n", r.Failed)
	for _, e := range r.Errors {
		fmt.Fprintf(tw, "\t%s\n", e)
	}
	fmt.Fprintf(tw, "upgrades done\t%d of %d\n", r.Upgrades, r.Upgrades+r.UpgradesFailed)
	rolled := "NOT rolled back: " + r.BrokenError
	if r.BrokenRolled {
		rolled = "rolled back, the old process kept serving"
	}
	fmt.Fprintf(tw, "broken upgrade\t%s\n", rolled)
	fmt.Fprintf(tw, "handoff latency\tmin %.1f ms, median %.1f ms, max %.1f ms\n", r.HandoffMS.Min, r.HandoffMS.Median, r.HandoffMS.Max)
	fmt.Fprintf(tw, "old process exit\tmin %.1f ms, median %.1f ms, max %.1f ms (after the new one was ready)\n", r.OldExitMS.Min, r.OldExitMS.Median, r.OldExitMS.Max)
	fmt.Fprintf(tw, "took\t%.1f s\n", r.Seconds)
	_ = tw.Flush()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// freeLoopbackAddr returns a loopback address nothing listens on now.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// withoutSystemdEnv keeps the demo's server from taking the caller's
// sockets or notify socket.
func withoutSystemdEnv(env []string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "NOTIFY_SOCKET", "WATCHDOG_PID", "WATCHDOG_USEC":
			return true
		}
		return false
	})
}

// demoLoad is the demo's clients.
type demoLoad struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []string
	first      map[int]time.Time // first response from each pid
	last       struct {
		pid int
		at  time.Time
	}
	quit chan struct{}
	wg   sync.WaitGroup
}

func startDemoLoad(addr string, n int) *demoLoad {
	l := &demoLoad{first: map[int]time.Time{}, quit: make(chan struct{})}
	for i := range n {
		c := &rawhttp.Client{Addr: addr, KeepAlive: i%2 == 0}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer c.Close()
			for {
				select {
				case <-l.quit:
					return
				default:
				}
				h, err := c.Get("/")
				pid := 0
				if err == nil {
					pid, err = strconv.Atoi(h.Get("X-Pid"))
				}
				l.record(pid, err)
			}
		}()
	}
	return l
}

// record counts one request's outcome.
func (l *demoLoad) record(pid int, err error) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.failed.Add(1)
		if len(l.errs) < 5 {
			l.errs = append(l.errs, err.Error())
		}
		return
	}
	l.ok.Add(1)
	if _, seen := l.first[pid]; !seen {
		l.first[pid] = now
	}
	l.last.pid, l.last.at = pid, now
}

// await returns once n more requests have completed.
func (l *demoLoad) await(n int64) {
	want := l.ok.Load() + l.failed.Load() + n
	for l.ok.Load()+l.failed.Load() < want {
		time.Sleep(time.Millisecond)
	}
}

// firstFrom waits for the first response from pid.
func (l *demoLoad) firstFrom(pid int, limit time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		t, ok := l.first[pid]
		l.mu.Unlock()
		if ok {
			return t, true
		}
		time.Sleep(100 * time.Microsecond)
	}
	return time.Time{}, false
}

// lastPIDAfter waits for a response completed after t and returns its pid.
func (l *demoLoad) lastPIDAfter(t time.Time, limit time.Duration) (int, bool) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		pid, at := l.last.pid, l.last.at
		l.mu.Unlock()
		if at.After(t) {
			return pid, true
		}
		time.Sleep(time.Millisecond)
	}
	return 0, false
}

func (l *demoLoad) stop() {
	close(l.quit)
	l.wg.Wait()
}

func (l *demoLoad) errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.errs)
}

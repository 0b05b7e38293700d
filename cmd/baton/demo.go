package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/batonhq/baton/internal/control"
)

const demoUsage = `
baton demo [--upgrades N] [--clients C] [--mode handoff|run] [--json]

Shows a zero-downtime upgrade in one command, with nothing but this
binary: it runs a copy of itself as a small HTTP server (package handoff
around a handler that answers with its pid) on a free loopback port and
drives concurrent load (half the clients keep their connection alive,
half open a new connection for every request, none retries).

First, for the contrast, the naive way: the server is stopped (SIGTERM)
and started again N times under the load. Then the baton way: the same
server is upgraded N times through the control channel ('baton reload'),
plus once with a deliberately broken new version (a program that exits
at start) that must be rolled back while the old process keeps serving.
It prints the failed requests of both ("naive restart: 37 refused or
failed; baton: 0"), a timeline of each restart and upgrade (responses per
10 ms, by process), the handoff latency (from the reload request to the
first response from the new process) and how long the old processes took
to exit.

--mode handoff (the default) runs the server alone: it upgrades itself
with package handoff. --mode run runs it under 'baton run', which holds
the socket and replaces the process.

  baton demo

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
	if err := d.prepare(); err != nil {
		return nil, err
	}
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	res := &demoResult{Mode: d.cmd.mode, Addr: addr, Clients: d.cmd.clients}
	if err := d.naive(ctx, addr, res); err != nil {
		return nil, err
	}
	target, serving, err := d.startServer(ctx, addr)
	if err != nil {
		return nil, err
	}
	res.PIDs = append(res.PIDs, serving)
	d.say("serving on http://%s/ (pid %d, mode %s); %d clients: %d keep-alive, %d new connection per request",
		addr, serving, d.cmd.mode, d.cmd.clients, (d.cmd.clients+1)/2, d.cmd.clients/2)

	l := startDemoLoad(addr, d.cmd.clients)
	var events []demoEvent
	var handoffs, exits []time.Duration
	var exitMu sync.Mutex
	var exitWG sync.WaitGroup
	broken := d.cmd.upgrades / 2
	for i := 0; i <= d.cmd.upgrades; i++ {
		if ctx.Err() != nil {
			break
		}
		l.Await(30)
		if i == broken {
			d.brokenUpgrade(ctx, target, serving, l, res)
			l.Await(30)
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
			if pid, ok := l.PIDAfter(time.Now(), 10*time.Second); ok {
				serving = pid
				if d.cmd.mode == "handoff" {
					target = pid
				}
			}
			continue
		}
		reloaded := time.Since(t0)
		first, ok := l.FirstFrom(pid, 10*time.Second)
		handoff := first.Sub(t0)
		if !ok {
			handoff, first = 0, time.Time{}
		} else {
			handoffs = append(handoffs, handoff)
		}
		events = append(events, demoEvent{
			what: fmt.Sprintf("upgrade %d/%d: pid %d -> %d", i+1, d.cmd.upgrades, old, pid),
			at:   t0, old: old, new: pid, first: first,
		})
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
	l.Await(30)
	l.Stop()
	exitWG.Wait()
	d.stopServer(serving)

	for _, ev := range events {
		res.Timelines = append(res.Timelines, l.timeline(ev))
	}
	res.Requests, res.Failed = l.ok.Load()+l.failed.Load(), l.failed.Load()
	res.Errors = l.Errors()
	res.Errors = res.Errors[:min(len(res.Errors), demoErrors)]
	res.HandoffMS, res.OldExitMS = summarize(handoffs), summarize(exits)
	res.Seconds = time.Since(d.start).Seconds()
	res.OK = res.Failed == 0 && res.UpgradesFailed == 0 && res.BrokenRolled && res.Upgrades == d.cmd.upgrades
	return res, nil
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
	got, ok := l.PIDAfter(after, 10*time.Second)
	res.BrokenRolled = ok && got == serving
	d.say("broken upgrade (a binary that exits with status 3 at start): rolled back, pid %d still serving\n    reason: %v",
		got, err)
}

// naive runs the same load against the same server restarted the plain
// way (SIGTERM, wait for the exit, start it again) as many times as the
// demo then upgrades it: what a stop-and-start costs, for the contrast.
func (d *demo) naive(ctx context.Context, addr string, res *demoResult) error {
	type proc struct {
		cmd    *exec.Cmd
		exited chan struct{}
	}
	start := func() (proc, error) {
		cmd := exec.Command(d.bin, demoServerArg, "-listen", addr)
		cmd.Stdout, cmd.Stderr = d.log, d.log
		cmd.Env = withoutSystemdEnv(os.Environ())
		if err := cmd.Start(); err != nil {
			return proc{}, fmt.Errorf("demo: start server: %w", err)
		}
		p := proc{cmd, make(chan struct{})}
		go func() { _ = cmd.Wait(); close(p.exited) }()
		return p, nil
	}
	stop := func(p proc) {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}
	p, err := start()
	if err != nil {
		return err
	}
	defer func() { stop(p) }()
	if _, err := d.awaitAnswer(ctx, addr, p.exited); err != nil {
		return err
	}
	n := d.cmd.upgrades
	d.say("naive restart first: the same server on http://%s/, stopped and started again %d times under the same load", addr, n)
	l := startDemoLoad(addr, d.cmd.clients)
	defer l.Stop()
	var events []demoEvent
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		l.Await(30)
		old := p.cmd.Process.Pid
		failed := l.failed.Load()
		t0 := time.Now()
		stop(p)
		if p, err = start(); err != nil {
			return err
		}
		first, ok := l.FirstFrom(p.cmd.Process.Pid, 10*time.Second)
		if !ok {
			return fmt.Errorf("demo: restarted server not answering after 10s; its log:\n%s", d.serverLog())
		}
		events = append(events, demoEvent{
			what: fmt.Sprintf("naive restart %d/%d: pid %d -> %d", i+1, n, old, p.cmd.Process.Pid),
			at:   t0, old: old, new: p.cmd.Process.Pid, first: first,
		})
		d.say("naive restart %2d/%d  pid %d -> %d  first response after %s, %d requests failed so far",
			i+1, n, old, p.cmd.Process.Pid, ms(first.Sub(t0)), l.failed.Load()-failed)
	}
	l.Await(30)
	l.Stop()
	for _, ev := range events {
		res.Timelines = append(res.Timelines, l.timeline(ev))
	}
	res.Naive = demoNaive{Restarts: len(events), Requests: l.ok.Load() + l.failed.Load(), Failed: l.failed.Load(), Errors: l.Errors()}
	return nil
}

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

	l := rawhttp.StartLoad(addr, d.cmd.clients, func(i int) bool { return i%2 == 0 })
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
	l.Await(30)
	l.Stop()
	exitWG.Wait()
	d.stopServer(serving)

	res.Requests, res.Failed = l.OK.Load()+l.Failed.Load(), l.Failed.Load()
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
func (d *demo) brokenUpgrade(ctx context.Context, target, serving int, l *rawhttp.Load, res *demoResult) {
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

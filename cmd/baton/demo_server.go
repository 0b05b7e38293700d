package main

import (
	"context"
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
	"syscall"
	"time"

	"github.com/batonhq/baton/internal/demoserver"
)

// The demo's server: a copy of this executable run as the server of
// package demoserver, installed, started (alone or under baton run) and
// stopped.

// demoServerArg, as the first argument of a baton binary, makes it the
// demo's server instead of the command line. The demo starts a copy of
// itself with it, so an installed baton needs no checkout or go command;
// upgrades start the copy on disk again with the same arguments. It is
// not a command `baton help` lists: only the demo uses it.
const demoServerArg = "demo-server"

func init() {
	// Before main: the server is a process of its own, with package
	// handoff's signal handling and exit, not one of baton's commands.
	if len(os.Args) < 2 || os.Args[1] != demoServerArg {
		return
	}
	if err := demoserver.Run(os.Args[2:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "baton demo server:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// prepare installs a copy of this executable in a fresh work directory:
// the server the demo runs and upgrades.
func (d *demo) prepare() error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	d.good = self
	d.work, err = os.MkdirTemp("", "baton-demo-")
	if err != nil {
		return err
	}
	d.bin = filepath.Join(d.work, "http")
	d.log, err = os.Create(filepath.Join(d.work, "server.log"))
	if err != nil {
		return err
	}
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
	switch d.cmd.mode {
	case "handoff":
		d.srv = exec.Command(d.bin, demoServerArg, "-listen", addr)
	case "run":
		self, err := os.Executable()
		if err != nil {
			return 0, 0, err
		}
		d.srv = exec.Command(self, "run", "--quiet", "--drain", "10s", "--ready-timeout", "10s",
			"--listen", "http=tcp://"+addr, "--", d.bin, demoServerArg, "-listen", addr)
	}
	d.srv.Stdout, d.srv.Stderr = d.log, d.log
	d.srv.Env = withoutSystemdEnv(os.Environ())
	if err := d.srv.Start(); err != nil {
		return 0, 0, fmt.Errorf("demo: start server: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = d.srv.Wait(); close(exited) }()
	d.srvExited = exited
	pid, err := d.awaitAnswer(ctx, addr, exited)
	if err != nil {
		return 0, 0, err
	}
	if d.cmd.mode == "run" {
		return d.srv.Process.Pid, pid, nil
	}
	return pid, pid, nil
}

// awaitAnswer asks addr until a server answers, and returns its X-Pid;
// it gives up when exited is closed (the server exited).
func (d *demo) awaitAnswer(ctx context.Context, addr string, exited <-chan struct{}) (int, error) {
	c := &http.Client{Timeout: time.Second}
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return 0, fmt.Errorf("demo: server exited at start; its log:\n%s", d.serverLog())
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		resp, err := c.Get("http://" + addr + "/")
		if err != nil {
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		pid, _ := strconv.Atoi(resp.Header.Get("X-Pid"))
		return pid, nil
	}
	return 0, fmt.Errorf("demo: server not answering after 15s; its log:\n%s", d.serverLog())
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

package main

import (
	"context"
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
	"syscall"
	"time"
)

// The demo's server: examples/http built, installed, started (alone or
// under baton run) and stopped.

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

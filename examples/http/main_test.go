//go:build linux

package main

import (
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/batonhq/baton/internal/spawn"
	"github.com/batonhq/baton/internal/testproc"
)

func TestMain(m *testing.M) {
	testproc.Register("http", func() {
		if err := flag.CommandLine.Parse(testproc.Args()[1:]); err != nil {
			os.Exit(2)
		}
		if err := run("127.0.0.1:0", testproc.Args()[0]); err != nil {
			os.Exit(1)
		}
	})
	if _, helper := os.LookupEnv(testproc.EnvHelper); !helper {
		// Each generation is orphaned when its predecessor exits and is
		// reparented to the test process, which reaps the ones it knows.
		if err := testproc.Subreaper(); err != nil {
			panic(err)
		}
	}
	testproc.Main(m)
}

// TestServeAndUpgrade runs the example socket-activated (name "http"),
// checks its answers, upgrades it with SIGHUP and stops it with SIGTERM.
func TestServeAndUpgrade(t *testing.T) {
	lf, addr := testproc.ListenerFile(t)
	defer lf.Close()
	pidfile := filepath.Join(t.TempDir(), "pid")
	cmd := testproc.Command(t, "http", pidfile)
	p, err := spawn.Start(&spawn.Config{
		Path: cmd.Path, Args: cmd.Args, Env: cmd.Env, Stderr: os.Stderr,
		Files: []*os.File{lf}, Names: []string{"http"}, Mode: spawn.SelfFix,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = p.Wait() }()
	url := "http://" + addr + "/"

	pid := testproc.WaitPIDFile(t, pidfile, 0)
	if pid != p.Pid {
		t.Errorf("pid file names %d, want %d", pid, p.Pid)
	}
	check(t, url+"?ms=20", pid, 1)
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	next := testproc.WaitPIDFile(t, pidfile, pid)
	// Until generation 1 is gone it may still take a new connection.
	testproc.WaitGone(t, pid)
	check(t, url, next, 2)
	if err := syscall.Kill(next, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	testproc.WaitGone(t, next)
	testproc.Reap(next)
}

func check(t *testing.T, url string, pid, gen int) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	want := "pid " + strconv.Itoa(pid) + " generation " + strconv.Itoa(gen) + "\n"
	if string(body) != want || resp.Header.Get("X-Pid") != strconv.Itoa(pid) || resp.Header.Get("X-Generation") != strconv.Itoa(gen) {
		t.Errorf("GET %s = %q, X-Pid %q, X-Generation %q; want %q", url, body, resp.Header.Get("X-Pid"), resp.Header.Get("X-Generation"), want)
	}
}

//go:build linux

package main

import (
	"flag"
	"io"
	"net/http"
	"strconv"
	"testing"

	"github.com/batonhq/baton/internal/exampletest"
	"github.com/batonhq/baton/internal/testproc"
)

func TestMain(m *testing.M) {
	// Args: the example's flags.
	exampletest.Register("http", func(pidfile string, flags []string) error {
		if err := flag.CommandLine.Parse(flags); err != nil {
			return err
		}
		return run("127.0.0.1:0", pidfile)
	})
	exampletest.Main(m)
}

// TestServeAndUpgrade runs the example socket-activated (name "http"),
// checks its answers, upgrades it with SIGHUP and stops it with SIGTERM.
func TestServeAndUpgrade(t *testing.T) {
	s := exampletest.Start(t, exampletest.Config{Helper: "http", Socket: "http"})
	url := "http://" + s.Addr + "/"

	pid := s.PID() // Start checks it is the process started
	check(t, url+"?ms=20", pid, 1)
	next := s.Upgrade()
	// Until generation 1 is gone it may still take a new connection.
	testproc.WaitGone(t, pid)
	check(t, url, next, 2)
	s.Stop()
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

//go:build linux

package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// smokeUnits are a socket-activated Type=notify service running sdserver.
func smokeUnits(bin string) map[string]string {
	return map[string]string{
		"smoke.socket": `[Unit]
Description=e2e smoke socket

[Socket]
ListenStream=127.0.0.1:8080
FileDescriptorName=http
`,
		"smoke.service": `[Unit]
Description=e2e smoke service
Requires=smoke.socket
StartLimitIntervalSec=0
After=smoke.socket

[Service]
Type=notify
NotifyAccess=main
ExecStart=` + bin + ` -generation 1
`,
	}
}

// journalFiles lists the host's persistent journal files.
func journalFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir("/var/log/journal", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		files = append(files, path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	return files
}

// TestSmoke boots a box, serves a socket-activated notify service in it
// (the Go server with go-systemd, and the C server with libsystemd), drives
// load from inside its network namespace, and checks that powering it off
// leaves nothing on the host.
func TestSmoke(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(t *testing.T) string
		start string // the server's line in the journal
	}{
		{"go", func(t *testing.T) string { return Build(t, "./e2e/internal/sdserver") }, "sdserver: serving on 127.0.0.1:8080"},
		{"c", func(t *testing.T) string { return BuildC(t, "e2e/testdata/sdserver.c", "-lsystemd") }, "sdserver.c: serving as pid"},
	} {
		t.Run(tc.name, func(t *testing.T) { smoke(t, tc.build(t), tc.start) })
	}
}

func smoke(t *testing.T, bin, startLine string) {
	journalBefore := journalFiles(t)
	box := Boot(t, Config{Share: []string{BuildDir(t)}})

	if got := strings.TrimSpace(box.Run("hostname")); got != "baton-e2e-"+box.Name() {
		t.Errorf("hostname in the box = %q, want baton-e2e-%s", got, box.Name())
	}
	box.InstallText(smokeUnits(bin))
	box.Systemctl("start", "smoke.socket", "smoke.service")

	t0 := time.Now()
	load := box.StartLoad(t.Context(), LoadConfig{URL: "http://127.0.0.1:8080/"})
	load.WaitRequests(500)
	// The test servers drain without losing a request: restarts under load
	// (the socket unit holds the socket meanwhile) fail nothing.
	const restarts = 5
	for range restarts {
		box.Systemctl("restart", "smoke.service")
		load.WaitRequests(100)
	}
	res := load.Stop()
	t.Logf("smoke %s: %v restarts=%d duration=%v", filepath.Base(bin), res, restarts, time.Since(t0).Round(time.Millisecond))
	if res.Failed != 0 {
		t.Errorf("smoke: %d of %d requests failed: %v", res.Failed, res.Requests, res.Samples)
	}

	props := box.Show("smoke.service", "MainPID", "ActiveState", "SubState", "NRestarts")
	if props["ActiveState"] != "active" || props["SubState"] != "running" || props["NRestarts"] != "0" {
		t.Errorf("smoke.service: %v, want active/running with NRestarts=0", props)
	}
	main := box.MainPID("smoke.service")
	if len(res.Pids) != restarts+1 || res.Pids[main] == 0 {
		t.Errorf("responses by pid %v, want %d pids, MainPID %d among them", res.Pids, restarts+1, main)
	}
	if j := box.Journal("smoke.service"); !strings.Contains(j, startLine) {
		t.Errorf("journal of smoke.service lacks the server's start line:\n%s", j)
	}

	cg, state := box.Cgroup(), box.StateDir()
	if _, err := os.Stat(cg); err != nil {
		t.Errorf("box cgroup %s: %v", cg, err)
	}
	if err := box.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	for _, p := range []string{cg, state} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still there after Close (stat: %v)", p, err)
		}
	}
	if after := journalFiles(t); !slices.Equal(journalBefore, after) {
		t.Errorf("host journal files changed:\nbefore %v\nafter  %v", journalBefore, after)
	}
}

// TestLoadCountsFailures checks that the load driver counts what it cannot
// get: nothing listens on the port.
func TestLoadCountsFailures(t *testing.T) {
	box := Boot(t, Config{})
	load := box.StartLoad(t.Context(), LoadConfig{URL: "http://127.0.0.1:8081/", MaxRequests: 200})
	load.WaitRequests(100)
	res := load.Stop()
	if res.Requests < 100 || res.Failed != res.Requests || res.Failures[FailRefused] != res.Requests {
		t.Errorf("load against a closed port: %v, want every request refused", res)
	}
}

// TestSeveralBoxes runs two boxes at once, each with its own loopback
// serving the same port.
func TestSeveralBoxes(t *testing.T) {
	bin := Build(t, "./e2e/internal/sdserver")
	boxes := []*Box{
		Boot(t, Config{Share: []string{BuildDir(t)}}),
		Boot(t, Config{Share: []string{BuildDir(t)}}),
	}
	pids := map[int]bool{}
	for _, box := range boxes {
		box.InstallText(smokeUnits(bin))
		box.Systemctl("start", "smoke.socket")
	}
	for _, box := range boxes {
		load := box.StartLoad(t.Context(), LoadConfig{URL: "http://127.0.0.1:8080/", KeepAlive: 1})
		load.WaitRequests(50)
		res := load.Stop()
		if res.Failed != 0 || len(res.Pids) != 1 {
			t.Errorf("box %s: %v %v", box.Name(), res, res.Samples)
		}
		main := box.MainPID("smoke.service")
		pids[main] = true
		if res.Pids[main] == 0 {
			t.Errorf("box %s: responses by pid %v, want from MainPID %d", box.Name(), res.Pids, main)
		}
	}
	if boxes[0].PID() == boxes[1].PID() {
		t.Errorf("both boxes have PID 1 = host pid %d", boxes[0].PID())
	}
}

// TestSystemdTree boots the second systemd version.
func TestSystemdTree(t *testing.T) {
	tree := SystemdTree(t)
	box := Boot(t, Config{SystemdTree: tree})
	out := box.Systemctl("--version")
	if !strings.HasPrefix(out, "systemd 254") {
		t.Errorf("systemctl --version in the box:\n%s\nwant systemd 254", out)
	}
	if v := box.Show("-.mount", "Id")["Id"]; v != "-.mount" {
		t.Errorf("systemctl show -.mount: Id=%q", v)
	}
}

// TestReleases boots every release the scenarios run under, each with its
// own systemd (and, for a root, its own C library), and runs the C test
// server built against its libsystemd inside it.
func TestReleases(t *testing.T) {
	forReleases(t, func(t *testing.T, r Release) {
		bin := r.BuildC(t, "e2e/testdata/sdserver.c")
		box := Boot(t, r.Config(Config{Share: []string{BuildDir(t)}}))
		out := box.Systemctl("--version")
		if majorVersion(out) != r.Version {
			t.Errorf("systemctl --version in the box:\n%s\nwant systemd %d", out, r.Version)
		}
		if r.Root != "" {
			lib := box.Run("/bin/sh", "-c", "ldd "+bin+" | grep -E 'libsystemd|libc\\.'")
			t.Logf("%s: %s", r, lib)
			if strings.Contains(lib, "not found") {
				t.Errorf("%s in the box:\n%s", bin, lib)
			}
		}
	})
}

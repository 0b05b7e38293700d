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

// TestSmoke boots a box, serves a socket-activated notify service in it,
// drives load from inside its network namespace, and checks that powering
// it off leaves nothing on the host.
func TestSmoke(t *testing.T) {
	bin := Build(t, "./e2e/internal/sdserver")
	journalBefore := journalFiles(t)
	box := Boot(t, Config{Share: []string{BuildDir(t)}})

	if got := strings.TrimSpace(box.Run("hostname")); got != "baton-e2e-"+box.Name() {
		t.Errorf("hostname in the box = %q, want baton-e2e-%s", got, box.Name())
	}
	box.InstallText(smokeUnits(bin))
	box.Systemctl("start", "smoke.socket", "smoke.service")

	t0 := time.Now()
	load := box.StartLoad(t.Context(), LoadConfig{URL: "http://127.0.0.1:8080/"})
	load.WaitRequests(1000)
	res := load.Stop()
	t.Logf("smoke: %v duration=%v", res, time.Since(t0).Round(time.Millisecond))
	if res.Failed != 0 {
		t.Errorf("smoke: %d of %d requests failed: %v", res.Failed, res.Requests, res.Samples)
	}

	props := box.Show("smoke.service", "MainPID", "ActiveState", "SubState", "NRestarts")
	if props["ActiveState"] != "active" || props["SubState"] != "running" || props["NRestarts"] != "0" {
		t.Errorf("smoke.service: %v, want active/running with NRestarts=0", props)
	}
	main := box.MainPID("smoke.service")
	if len(res.Pids) != 1 || res.Pids[main] == 0 {
		t.Errorf("responses by pid %v, want all from MainPID %d", res.Pids, main)
	}
	if j := box.Journal("smoke.service"); !strings.Contains(j, "sdserver: serving on 127.0.0.1:8080") {
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

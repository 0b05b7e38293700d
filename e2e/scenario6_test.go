//go:build linux

package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestScenario6BatonRun: `baton run` as ExecStart= around programs that
// know nothing of baton, a Go one using go-systemd and a C one using
// libsystemd: 50 reloads under load with zero failed requests, a new
// serving process each time, baton staying the main process. The
// "hardened" case runs the Go one under the units `baton units --run`
// writes (sandbox included).
func TestScenario6BatonRun(t *testing.T) {
	p := buildProduct(t)
	forReleases(t, func(t *testing.T, rel Release) {
		type binary struct {
			name     string
			bin      func(t *testing.T) string
			hardened bool
		}
		cases := []binary{
			{name: "go", bin: func(t *testing.T) string { return Build(t, "./e2e/internal/sdserver") }},
			// Linked against the release's own libsystemd: from 258 on,
			// its sd_listen_fds checks LISTEN_PIDFDID.
			{name: "c", bin: func(t *testing.T) string { return rel.BuildC(t, "e2e/testdata/sdserver.c") }},
		}
		if rel.Tree == "" && rel.Root == "" {
			// The sandbox of `baton units --run` on the machine's systemd.
			cases = append(cases, binary{name: "hardened", bin: func(t *testing.T) string { return Build(t, "./e2e/internal/sdserver") }, hardened: true})
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) { batonRun(t, p, rel, tc.bin(t), tc.hardened) })
		}
	})
}

func batonRun(t *testing.T, p product, rel Release, bin string, hardened bool) {
	box := boxWithProduct(t, rel.Config(Config{}))
	socket := "s6.socket"
	if hardened {
		files := p.units(t, "--name", "s6", "--run", "--listen", "http=tcp://127.0.0.1:8080", "--", bin)
		if svc := files["s6.service"]; !strings.Contains(svc, "ExecStart="+p.baton+" run ") || !strings.Contains(svc, "PrivateNetwork=yes") {
			t.Fatalf("baton units --run wrote:\n%s", svc)
		}
		install(t, box, files)
		socket = "s6-http.socket"
	} else {
		box.InstallText(map[string]string{
			"s6.socket": "[Socket]\nListenStream=127.0.0.1:8080\nFileDescriptorName=http\n",
			"s6.service": `[Unit]
Requires=s6.socket
After=s6.socket

[Service]
Type=notify
NotifyAccess=main
ExecStart=` + p.baton + ` run -- ` + bin + `
ExecReload=` + p.baton + ` reload --pid $MAINPID
`,
		})
	}
	box.Systemctl("start", socket, "s6.service")
	baton := box.MainPID("s6.service")

	count := rel.Rounds(50)
	if hardened {
		count = 20 // the sandbox's case: the other two carry the 50
	}
	res, start := reloadsUnderLoad(t, box, "s6.service", count)
	scenarioReport(t, 6, rel, res, count, start)
	if main := box.MainPID("s6.service"); main != baton {
		t.Errorf("MainPID %d, want baton run (%d) throughout", main, baton)
	}
	checkJournal(t, box, "s6.service")
}

// reloadsUnderLoad reloads unit count times under load, each time checking
// that the unit stays active and running, never restarted, and that a new
// process serves; it returns the load's result and when it started.
func reloadsUnderLoad(t *testing.T, box *Box, unit string, count int) (LoadResult, time.Time) {
	t.Helper()
	start := time.Now()
	load := box.StartLoad(t.Context(), LoadConfig{URL: httpURL})
	load.WaitRequests(100)
	served := []int{probe(t, box)}
	for i := range count {
		load.WaitRequests(20)
		box.Systemctl("reload", unit)
		p := box.Show(unit, "MainPID", "ActiveState", "SubState", "NRestarts")
		if p["ActiveState"] != "active" || p["SubState"] != "running" || p["NRestarts"] != "0" {
			t.Fatalf("after reload %d: %v", i+1, p)
		}
		prev := served[len(served)-1]
		pid := probeUntil(t, box, func(pid int) bool { return pid != prev })
		if pid == prev {
			t.Fatalf("after reload %d: still served by pid %d", i+1, pid)
		}
		served = append(served, pid)
	}
	load.WaitRequests(20)
	return load.Stop(), start
}

//go:build linux

package e2e

import (
	"testing"
)

// TestScenario12BatonRunFront: `baton run --front` as ExecStart= around a
// go-systemd server that exits at SIGTERM with no drain at all (which
// loses requests at every reload without --front): 30 reloads under
// keep-alive and new-connection load with zero failed requests, a new
// serving process each time, baton staying the main process, and a stop
// that ends the unit cleanly.
func TestScenario12BatonRunFront(t *testing.T) {
	p := buildProduct(t)
	bin := Build(t, "./e2e/internal/sdserver")
	box := boxWithProduct(t, Config{})
	box.InstallText(map[string]string{
		"s12.socket": "[Socket]\nListenStream=127.0.0.1:8080\nFileDescriptorName=http\n",
		"s12.service": `[Unit]
Requires=s12.socket
After=s12.socket

[Service]
Type=notify
NotifyAccess=main
ExecStart=` + p.baton + ` run --front --drain 10s -- ` + bin + ` -exit-at-term
ExecReload=` + p.baton + ` reload --pid $MAINPID
KillMode=mixed
`,
	})
	box.Systemctl("start", "s12.socket", "s12.service")
	baton := box.MainPID("s12.service")

	const count = 30
	res, start := reloadsUnderLoad(t, box, "s12.service", count)
	scenarioReport(t, 12, Machine(t), res, count, start)
	if main := box.MainPID("s12.service"); main != baton {
		t.Errorf("MainPID %d, want baton run (%d) throughout", main, baton)
	}
	box.Systemctl("stop", "s12.service")
	if p := box.Show("s12.service", "ActiveState", "Result"); p["ActiveState"] != "inactive" || p["Result"] != "success" {
		t.Errorf("after stop: %v", p)
	}
	checkJournal(t, box, "s12.service")
}

//go:build linux

package e2e

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testproc"
)

// TestScenario7NotifyReload: on every release from 253 on (254, 257, the
// newest) the units are Type=notify-reload with ExecReload=baton reload
// (and a ReloadSignal= the server ignores; RELOADING=1 carries
// MONOTONIC_USEC, which 257+ require): `systemctl reload` returns once the
// new generation serves, under load with zero failed requests, and fails
// when the upgrade fails, while the old generation keeps serving and says
// why in STATUS=.
func TestScenario7NotifyReload(t *testing.T) {
	p := buildProduct(t)
	ran := 0
	for _, rel := range Releases(t) {
		if !rel.NotifyReload() {
			continue // 252: "Failed to parse service type"
		}
		ran++
		t.Run(rel.String(), func(t *testing.T) { notifyReload(t, p, rel) })
	}
	if ran == 0 {
		testproc.Require(t, false, "needs a systemd of 253 or later (.ci/fetch-systemd, .ci/systemd-tree)")
	}
}

func notifyReload(t *testing.T, p product, rel Release) {
	bin := privateCopy(t, p.http)
	good, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	box := boxWithProduct(t, rel.Config(Config{}))
	units := product{baton: p.baton, http: bin}.httpUnits(t, "s7", rel.UnitsFlags("--ready-timeout", "2s")...)
	install(t, box, units)
	if typ := box.Show("s7.service", "Type")["Type"]; typ != "notify-reload" {
		t.Fatalf("s7.service Type=%q, want notify-reload", typ)
	}
	box.Systemctl("start", "s7-http.socket")

	count := rel.Rounds(20)
	start := time.Now()
	load := box.StartLoad(t.Context(), LoadConfig{URL: httpURL})
	load.WaitRequests(100)
	// reloadLoop reads MainPID right after systemctl reload returns: a new
	// one each time means the reload waited for the new generation.
	mains := reloadLoop(t, box, "s7.service", count, load)

	testproc.InstallContent(t, bin, []byte("#!/bin/sh\necho 's7: broken binary' >&2\nexit 3\n"))
	ctx, cancel := box.context()
	out, err := box.Exec(ctx, "systemctl", "reload", "s7.service")
	cancel()
	var ee *ExecError
	if !errors.As(err, &ee) {
		t.Fatalf("systemctl reload with a broken binary: err=%v %s, want it to fail", err, out)
	}
	old := mains[len(mains)-1]
	props := box.Show("s7.service", "MainPID", "ActiveState", "SubState", "StatusText")
	t.Logf("after the failed upgrade: %v", props)
	if box.MainPID("s7.service") != old || props["ActiveState"] != "active" || props["SubState"] != "running" {
		t.Errorf("after the failed upgrade: %v, want active/running with MainPID %d", props, old)
	}
	if !strings.Contains(props["StatusText"], "exit status 3") {
		t.Errorf("StatusText %q does not say why the upgrade failed", props["StatusText"])
	}
	if got := probeUntil(t, box, func(pid int) bool { return pid == old }); got != old {
		t.Errorf("served by pid %d after the failed upgrade, want %d", got, old)
	}
	testproc.InstallContent(t, bin, good)
	box.Systemctl("reload", "s7.service")
	mains = append(mains, waitNewMain(t, box, "s7.service", old))
	load.WaitRequests(50)
	res := load.Stop()
	scenarioReport(t, 7, rel, res, count+2, start)
	checkServedBy(t, box, res, mains)
	// The one failed reload, and nothing else.
	checkJournal(t, box, "s7.service", "Reload failed")
	if j := box.Journal("s7.service"); strings.Count(j, "Reload failed for") != 1 {
		t.Errorf("journal of s7.service: want exactly one failed reload:\n%s", j)
	}
}

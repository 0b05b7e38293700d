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

// TestScenario2BrokenBinary: a broken new binary (one that exits at start,
// one that is never ready) makes `systemctl reload` fail with the reason in
// the journal and in `systemctl status`, while the old process keeps
// serving without a failed request; once the binary is fixed the next
// reload works.
func TestScenario2BrokenBinary(t *testing.T) {
	p := buildProduct(t)
	forReleases(t, func(t *testing.T, rel Release) { brokenBinary(t, p, rel) })
}

func brokenBinary(t *testing.T, p product, rel Release) {
	bin := privateCopy(t, p.http)
	good, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	box := boxWithProduct(t, rel.Config(Config{}))
	units := product{baton: p.baton, http: bin}.httpUnits(t, "s2", rel.UnitsFlags("--ready-timeout", "2s")...)
	install(t, box, units)
	box.Systemctl("start", "s2-http.socket")

	start := time.Now()
	load := box.StartLoad(t.Context(), LoadConfig{URL: httpURL})
	load.WaitRequests(100)
	mains := []int{box.MainPID("s2.service")}

	broken := []struct {
		name   string
		script string
	}{
		{"exits at start", "#!/bin/sh\necho 's2: broken binary exits' >&2\nexit 3\n"},
		{"never ready", "#!/bin/sh\necho 's2: broken binary hangs' >&2\nexec sleep 600\n"},
	}
	failedReloads := 0
	for _, b := range broken {
		testproc.InstallContent(t, bin, []byte(b.script))
		ctx, cancel := box.context()
		out, err := box.Exec(ctx, "systemctl", "reload", "s2.service")
		cancel()
		var ee *ExecError
		if !errors.As(err, &ee) {
			t.Fatalf("%s: systemctl reload succeeded:\n%s", b.name, out)
		}
		failedReloads++
		t.Logf("%s: systemctl reload: %v", b.name, err)
		props := box.Show("s2.service", "MainPID", "ActiveState", "SubState", "StatusText", "NRestarts")
		if props["ActiveState"] != "active" || props["SubState"] != "running" || props["NRestarts"] != "0" {
			t.Errorf("%s: after the failed reload s2.service is %v, want active/running, no restart", b.name, props)
		}
		if main := box.MainPID("s2.service"); main != mains[0] {
			t.Errorf("%s: MainPID %d after a failed reload, want the old %d", b.name, main, mains[0])
		}
		status, _ := box.Exec(ctx, "systemctl", "status", "--no-pager", "--lines=20", "s2.service")
		t.Logf("%s: StatusText=%q\n%s", b.name, props["StatusText"], status)
		if props["StatusText"] == "" {
			t.Errorf("%s: no STATUS= reason after the failed reload", b.name)
		}
		if got := probeUntil(t, box, func(pid int) bool { return pid == mains[0] }); got != mains[0] {
			t.Errorf("%s: served by pid %d, want the old generation %d", b.name, got, mains[0])
		}
		load.WaitRequests(100)
	}
	journal := box.Journal("s2.service")
	for _, want := range []string{"s2: broken binary exits", "s2: broken binary hangs"} {
		if !strings.Contains(journal, want) {
			t.Errorf("journal lacks %q", want)
		}
	}

	testproc.InstallContent(t, bin, good)
	box.Systemctl("reload", "s2.service")
	main := box.MainPID("s2.service")
	if main == mains[0] {
		t.Errorf("MainPID still %d after the reload with the fixed binary", main)
	}
	mains = append(mains, main)
	load.WaitRequests(100)
	res := load.Stop()
	scenarioReport(t, 2, rel, res, failedReloads+1, start)
	checkServedBy(t, box, res, mains)
}

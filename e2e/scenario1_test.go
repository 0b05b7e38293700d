//go:build linux

package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// reloads is how many times scenario 1 reloads under load; scenario 3,
// the same with the sandbox, half as many.
const reloads = 100

// httpUnits returns `baton units` output for examples/http as service name
// with the socket http on 127.0.0.1:8080, plus extra flags.
func (p product) httpUnits(t *testing.T, name string, extra ...string) map[string]string {
	t.Helper()
	args := append([]string{
		"--name", name,
		"--exec", p.http + " -listen 127.0.0.1:8080",
		"--listen", "http=tcp://127.0.0.1:8080",
	}, extra...)
	return p.units(t, args...)
}

// reloadScenario starts name.service through its socket, runs reloads
// `systemctl reload` under keep-alive and new-connection load, and checks
// what a user checks: zero failed requests, a new MainPID after each reload
// that is the process serving, no restart, still active, and no notify
// error in the journal.
func reloadScenario(t *testing.T, n int, rel Release, box *Box, name string, count int) {
	t.Helper()
	unit := name + ".service"
	box.Systemctl("start", name+"-http.socket")
	start := time.Now()
	load := box.StartLoad(t.Context(), LoadConfig{URL: httpURL})
	load.WaitRequests(100) // the first request starts the service
	mains := reloadLoop(t, box, unit, count, load)
	res := load.Stop()
	scenarioReport(t, n, rel, res, count, start)
	checkServedBy(t, box, res, mains)
	checkJournal(t, box, unit)
}

// TestScenario1ReloadUnderLoad: units from `baton units` for examples/http
// (with --allow-network, for the release: Type=notify-reload from 253 on),
// 100 reloads under load on the machine's systemd, fewer on the others
// (Release.Rounds).
func TestScenario1ReloadUnderLoad(t *testing.T) {
	p := buildProduct(t)
	forReleases(t, func(t *testing.T, rel Release) {
		box := boxWithProduct(t, rel.Config(Config{}))
		install(t, box, p.httpUnits(t, "s1", rel.UnitsFlags("--allow-network")...))
		reloadScenario(t, 1, rel, box, "s1", rel.Rounds(reloads))
	})
}

// TestScenario3Hardened: the default units (hardened: a dynamic user, no
// network of its own) rate an exposure of at most 1.0, and reload works
// exactly as in scenario 1 (50 reloads).
func TestScenario3Hardened(t *testing.T) {
	p := buildProduct(t)
	forReleases(t, func(t *testing.T, rel Release) { hardened(t, p, rel) })
}

func hardened(t *testing.T, p product, rel Release) {
	box := boxWithProduct(t, rel.Config(Config{}))
	install(t, box, p.httpUnits(t, "s3", rel.UnitsFlags()...))

	out := box.Run("systemd-analyze", "security", "--no-pager", "s3.service")
	exposure := -1.0
	for line := range strings.SplitSeq(out, "\n") {
		// "→ Overall exposure level for s3.service: 0.2 SAFE 😀"
		if _, after, ok := strings.Cut(line, "Overall exposure level for s3.service:"); ok {
			if f := strings.Fields(after); len(f) > 0 {
				exposure, _ = strconv.ParseFloat(f[0], 64)
			}
		}
	}
	Report(t, "scenario 3: %s exposure=%.1f", rel, exposure)
	if exposure < 0 || exposure > 1.0 {
		t.Errorf("exposure %.1f, want <= 1.0:\n%s", exposure, out)
	}
	props := box.Show("s3.service", "PrivateNetwork", "DynamicUser")
	if props["PrivateNetwork"] != "yes" || props["DynamicUser"] != "yes" {
		t.Errorf("s3.service: %v, want PrivateNetwork=yes DynamicUser=yes", props)
	}
	reloadScenario(t, 3, rel, box, "s3", rel.Rounds(reloads/2))
}

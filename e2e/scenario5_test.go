//go:build linux

package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestScenario5Watchdog: with WatchdogSec=, 20 reloads under load cause no
// watchdog timeout (each generation pings as the main process); a process
// that stops pinging (SIGSTOP) is killed by systemd and restarted.
func TestScenario5Watchdog(t *testing.T) {
	p := buildProduct(t)
	box := boxWithProduct(t, Config{})
	units := p.httpUnits(t, "s5", "--watchdog", "2s")
	// A stopped process cannot act on the watchdog's SIGABRT: SIGKILL soon.
	dropIn(units, "s5.service", "[Service]\nTimeoutAbortSec=2s\n")
	install(t, box, units)
	box.Systemctl("start", "s5-http.socket", "s5.service")
	// systemd shows the watchdog of a started service only.
	if w := box.Show("s5.service", "WatchdogUSec")["WatchdogUSec"]; w != "2s" {
		t.Fatalf("WatchdogUSec=%q, want 2s", w)
	}

	const count = 20
	start := time.Now()
	load := box.StartLoad(t.Context(), LoadConfig{URL: httpURL})
	load.WaitRequests(100)
	mains := reloadLoop(t, box, "s5.service", count, load)
	// Outlive the watchdog interval after the last hand-over.
	time.Sleep(3 * time.Second)
	res := load.Stop()
	scenarioReport(t, 5, Machine(t), res, count, start)
	checkServedBy(t, box, res, mains)
	checkJournal(t, box, "s5.service")
	if n := box.Show("s5.service", "NRestarts")["NRestarts"]; n != "0" {
		t.Errorf("NRestarts=%s after the reloads, want 0", n)
	}

	// Stop pinging: systemd must kill the process and restart the service.
	main := mains[len(mains)-1]
	box.Run("kill", "-STOP", strconv.Itoa(main))
	main = waitNewMain(t, box, "s5.service", main)
	if n := box.Show("s5.service", "NRestarts")["NRestarts"]; n != "1" {
		t.Errorf("NRestarts=%s after the watchdog kill, want 1", n)
	}
	if j := box.Journal("s5.service"); !strings.Contains(j, "Watchdog timeout") {
		t.Errorf("journal lacks the watchdog timeout:\n%s", j)
	}
	if got := probeUntil(t, box, func(pid int) bool { return pid == main }); got != main {
		t.Errorf("served by pid %d after the watchdog restart, want MainPID %d", got, main)
	}
}

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestScenario8StopDuringReload: `systemctl stop` while a reload is under
// way (a successor that takes a second to start, an old generation with
// slow requests in flight) stops the service within TimeoutStopSec and
// leaves no process in its cgroup.
func TestScenario8StopDuringReload(t *testing.T) {
	p := buildProduct(t)
	real := privateCopy(t, p.http)
	dir := filepath.Dir(real)
	// The service's binary: a wrapper that starts slowly, then becomes
	// examples/http in the same process (LISTEN_PID stays right).
	wrapper := filepath.Join(dir, "slow-http")
	script := "#!/bin/sh\nsleep 1\nexec " + real + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	box := boxWithProduct(t, Config{})
	units := product{baton: p.baton, http: wrapper}.httpUnits(t, "s8")
	install(t, box, units)
	box.Systemctl("start", "s8-http.socket", "s8.service")

	start := time.Now()
	load := box.StartLoad(t.Context(), LoadConfig{URL: httpURL})
	load.WaitRequests(100)
	res := load.Stop() // a request after the stop would start the service again
	// Three slow requests, in flight during the stop: the old generation
	// drains them.
	slow := box.StartLoad(t.Context(), LoadConfig{URL: httpURL + "?ms=2000", NewConn: 3, MaxRequests: 3})
	time.Sleep(200 * time.Millisecond) // ordering only: let them reach the server
	box.Systemctl("reload", "--no-block", "s8.service")
	waitFor(t, "the reload to start", func() bool {
		return box.Show("s8.service", "SubState")["SubState"] == "reload"
	})
	t0 := time.Now()
	box.Systemctl("stop", "s8.service")
	stopTook := time.Since(t0)
	slowRes := slow.Stop()
	t.Logf("scenario 8: requests=%d failed=%d reloads=1 duration=%v stop=%v failures=%v slow=%v",
		res.Requests+slowRes.Requests, res.Failed+slowRes.Failed, time.Since(start).Round(time.Millisecond),
		stopTook.Round(time.Millisecond), res.Failures, slowRes)
	if res.Failed != 0 || slowRes.Failed != 0 {
		t.Errorf("failed requests: %v %v; slow: %v %v", res, res.Samples, slowRes, slowRes.Samples)
	}
	if slowRes.Requests != 3 {
		t.Errorf("slow requests: %v, want 3 completed", slowRes)
	}

	// The bar: stopped within TimeoutStopSec (no timeout, no
	// SIGKILL), nothing left. The stop's SIGTERM also ends the reload's
	// control process (baton reload), which systemd may count against
	// the unit (Result=signal): logged, not asserted.
	props := box.Show("s8.service", "ActiveState", "Result")
	t.Logf("scenario 8: after stop: %v", props)
	if st := props["ActiveState"]; st != "inactive" && st != "failed" {
		t.Errorf("after stop: %v, want the unit stopped", props)
	}
	if props["Result"] == "timeout" {
		t.Errorf("after stop: %v, the stop timed out", props)
	}
	cg := filepath.Join(box.Root(), "sys/fs/cgroup/system.slice/s8.service")
	if procs, err := os.ReadFile(filepath.Join(cg, "cgroup.procs")); err == nil && len(strings.TrimSpace(string(procs))) > 0 {
		t.Errorf("processes left in s8.service's cgroup: %s", procs)
	}
	for pid, cmdline := range box.Processes() {
		if strings.Contains(cmdline, dir) {
			t.Errorf("process left in the box: %d %s", pid, cmdline)
		}
	}
	j := box.Journal("s8.service")
	if strings.Contains(j, "timed out") || strings.Contains(j, "Killing process") {
		t.Errorf("the stop was not clean:\n%s", j)
	}
}

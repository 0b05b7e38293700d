//go:build linux

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testproc"
)

// TestScenario8StopDuringReload: `systemctl stop` while a reload is under
// way (a successor that takes seconds to start, an old generation with
// slow requests in flight) stops the service within TimeoutStopSec, leaves
// it inactive (Result=success: the abandoned reload is no failure) and
// leaves no process in its cgroup.
func TestScenario8StopDuringReload(t *testing.T) {
	p := buildProduct(t)
	real := privateCopy(t, p.http)
	dir := filepath.Dir(real)
	box := boxWithProduct(t, Config{})
	units := product{baton: p.baton, http: real}.httpUnits(t, "s8")
	install(t, box, units)
	box.Systemctl("start", "s8-http.socket", "s8.service")
	// The new version, installed by rename: a wrapper that starts slowly,
	// then becomes examples/http in the same process (LISTEN_PID stays
	// right).
	v2 := filepath.Join(dir, "http-v2")
	data, err := os.ReadFile(real)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(v2, data, 0o755); err != nil {
		t.Fatal(err)
	}
	testproc.InstallContent(t, real, []byte("#!/bin/sh\nsleep 2\nexec "+v2+" \"$@\"\n"))

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
	// The stop comes once the upgrade runs (the successor's wrapper
	// sleeps): `baton reload` has asked and waits. A stop in the first
	// milliseconds of ExecReload=, before baton reload's runtime has a
	// signal handler, kills it (see cmd/baton's traps).
	waitFor(t, "the successor to start", func() bool {
		for _, cmdline := range box.Processes() {
			if strings.HasPrefix(cmdline, "/bin/sh "+real) {
				return true
			}
		}
		return false
	})
	t0 := time.Now()
	box.Systemctl("stop", "s8.service")
	stopTook := time.Since(t0)
	slowRes := slow.Stop()
	Report(t, "scenario 8: %s requests=%d failed=%d reloads=1 duration=%v stop=%v failures=%v slow=%v",
		Machine(t), res.Requests+slowRes.Requests, res.Failed+slowRes.Failed, time.Since(start).Round(time.Millisecond),
		stopTook.Round(time.Millisecond), res.Failures, slowRes)
	if res.Failed != 0 || slowRes.Failed != 0 {
		t.Errorf("failed requests: %v %v; slow: %v %v", res, res.Samples, slowRes, slowRes.Samples)
	}
	if slowRes.Requests != 3 {
		t.Errorf("slow requests: %v, want 3 completed", slowRes)
	}

	// The bar: stopped within TimeoutStopSec (no timeout, no
	// SIGKILL), nothing left. The stop's SIGTERM also reaches the reload's
	// control process (baton reload): it waits for the answer, "upgrade
	// abandoned: stopping", and exits 0, so the unit ends inactive with
	// Result=success, not failed.
	props := box.Show("s8.service", "ActiveState", "Result")
	t.Logf("scenario 8: after stop: %v", props)
	if props["ActiveState"] != "inactive" || props["Result"] != "success" {
		t.Errorf("after stop: %v, want ActiveState=inactive Result=success\n%s", props, box.Journal("s8.service"))
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
	for line := range strings.Lines(j) {
		if strings.Contains(line, "upgrade abandoned") {
			t.Logf("scenario 8: baton reload: %s", strings.TrimSpace(line))
		}
	}
	if strings.Contains(j, "timed out") || strings.Contains(j, "Killing process") {
		t.Errorf("the stop was not clean:\n%s", j)
	}
}

//go:build linux

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// httpURL is where the scenarios' services listen, inside their box.
const httpURL = "http://127.0.0.1:8080/"

// product holds the product binaries the scenarios run, built once per
// test binary into BuildDir (a box sees them at the same path).
type product struct {
	baton string // ./cmd/baton
	http  string // ./examples/http
}

func buildProduct(t *testing.T) product {
	t.Helper()
	return product{baton: Build(t, "./cmd/baton"), http: Build(t, "./examples/http")}
}

// units runs `baton units ARGS --out DIR` on the host and returns the
// generated files by name.
func (p product) units(t *testing.T, args ...string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(p.baton, append([]string{"units", "--baton", p.baton, "--out", dir}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("baton units %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(data)
	}
	if len(files) == 0 {
		t.Fatalf("baton units %s wrote no file", strings.Join(args, " "))
	}
	return files
}

// dropIn adds a drop-in to the units, the way an administrator tunes a
// generated unit without editing it.
func dropIn(files map[string]string, unit, text string) {
	files[unit+".d/e2e.conf"] = text
}

// install writes the units (drop-ins included) into the box.
func install(t *testing.T, box *Box, files map[string]string) {
	t.Helper()
	units := filepath.Join(box.StateDir(), "units")
	for name, text := range files {
		path := filepath.Join(units, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	box.Systemctl("daemon-reload")
}

// privateCopy copies a binary into a directory of the test's own under
// BuildDir, so that the test may replace it.
func privateCopy(t *testing.T, bin string) string {
	t.Helper()
	dir, err := os.MkdirTemp(BuildDir(t), "t-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	dst := filepath.Join(dir, filepath.Base(bin))
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

// scenarioReport logs a scenario's numbers in one fixed format, naming the
// systemd release it ran under.
func scenarioReport(t *testing.T, n int, rel Release, res LoadResult, reloads int, start time.Time) {
	t.Helper()
	Report(t, "scenario %d: %s requests=%d failed=%d reloads=%d duration=%v failures=%v",
		n, rel, res.Requests, res.Failed, reloads, time.Since(start).Round(time.Millisecond), res.Failures)
	if res.Failed != 0 {
		t.Errorf("scenario %d: %d of %d requests failed: %v", n, res.Failed, res.Requests, res.Samples)
	}
	if res.Requests == 0 {
		t.Errorf("scenario %d: no request made", n)
	}
}

// notifyErrors are journal lines that mean a broken hand-over or a notify
// protocol error.
var notifyErrors = []string{
	"reception only permitted for main PID",
	"Got notification message from PID",
	"Failed to parse notification message",
	"Watchdog timeout",
	"Reload failed",
	"Failed with result",
	"Main process exited, code=",
	"Failed to parse service type",
}

// checkJournal fails the test for each notify error in the unit's journal.
func checkJournal(t *testing.T, box *Box, unit string, allowed ...string) {
	t.Helper()
	j := box.Journal(unit)
	for _, line := range strings.Split(j, "\n") {
		for _, bad := range notifyErrors {
			if strings.Contains(line, bad) && !slices.Contains(allowed, bad) {
				t.Errorf("journal of %s: %s", unit, line)
			}
		}
	}
}

// reloadLoop runs `systemctl reload` n times while load runs, checking
// after each that the unit is active with a new MainPID and no restart. It
// returns every MainPID seen, first the one before the first reload.
func reloadLoop(t *testing.T, box *Box, unit string, n int, load *Load) []int {
	t.Helper()
	mains := []int{box.MainPID(unit)}
	for i := range n {
		load.WaitRequests(20) // load runs across every reload
		box.Systemctl("reload", unit)
		p := box.Show(unit, "MainPID", "ActiveState", "SubState", "NRestarts")
		main, _ := strconv.Atoi(p["MainPID"])
		if p["ActiveState"] != "active" || p["SubState"] != "running" || p["NRestarts"] != "0" || main == 0 {
			t.Fatalf("after reload %d: %s %v", i+1, unit, p)
		}
		if main == mains[len(mains)-1] {
			t.Fatalf("after reload %d: MainPID still %d", i+1, main)
		}
		mains = append(mains, main)
	}
	load.WaitRequests(20)
	return mains
}

// checkServedBy fails the test unless every response came from one of the
// unit's successive main processes, and the last one serves now.
func checkServedBy(t *testing.T, box *Box, res LoadResult, mains []int) {
	t.Helper()
	for pid, n := range res.Pids {
		if !slices.Contains(mains, pid) {
			t.Errorf("%d responses from pid %d, never the MainPID (%v)", n, pid, mains)
		}
	}
	last := mains[len(mains)-1]
	if got := probeUntil(t, box, func(pid int) bool { return pid == last }); got != last {
		t.Errorf("a new connection is served by pid %d, want the MainPID %d", got, last)
	}
}

// probeUntil probes until ok accepts the pid that answered, at most 100
// times (an old generation may still accept for a moment after a hand-over
// is reported), and returns the last pid.
func probeUntil(t *testing.T, box *Box, ok func(pid int) bool) int {
	t.Helper()
	var pid int
	for range 100 {
		if pid = probe(t, box); ok(pid) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return pid
}

// probe makes one request on a new connection and returns the X-Pid that
// answered.
func probe(t *testing.T, box *Box) int {
	t.Helper()
	l := box.StartLoad(t.Context(), LoadConfig{URL: httpURL, NewConn: 1, MaxRequests: 1})
	l.WaitRequests(1)
	res := l.Stop()
	if res.Failed != 0 || len(res.Pids) != 1 {
		t.Fatalf("probe: %v %v", res, res.Samples)
	}
	for pid := range res.Pids {
		return pid
	}
	return 0
}

// boxWithProduct boots a box that sees the product binaries.
func boxWithProduct(t *testing.T, cfg Config) *Box {
	t.Helper()
	cfg.Share = append(cfg.Share, BuildDir(t))
	return Boot(t, cfg)
}

// waitFor polls cond every 50ms until it holds or the test's context ends.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	// A bound against hangs (a condition that can no longer come true, as
	// when every reload fails at once), far above any wait of a passing run.
	limit := time.NewTimer(waitForLimit)
	defer limit.Stop()
	for !cond() {
		select {
		case <-t.Context().Done():
			t.Fatalf("waiting for %s: %v", what, t.Context().Err())
		case <-limit.C:
			t.Fatalf("waiting for %s: not within %v", what, waitForLimit)
		case <-tick.C:
		}
	}
}

// waitForLimit bounds waitFor.
const waitForLimit = 2 * time.Minute

// waitNewMain waits until unit is active and running with a main process
// other than old, and returns it.
func waitNewMain(t *testing.T, box *Box, unit string, old int) int {
	t.Helper()
	var main int
	deadline := time.Now().Add(60 * time.Second)
	waitFor(t, unit+" to run again", func() bool {
		p := box.Show(unit, "MainPID", "ActiveState", "SubState")
		main, _ = strconv.Atoi(p["MainPID"])
		if time.Now().After(deadline) {
			t.Fatalf("%s did not run again: %v", unit, p)
		}
		return p["ActiveState"] == "active" && p["SubState"] == "running" && main != 0 && main != old
	})
	return main
}

//go:build linux

package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestScenario4FDStore: a service without a socket unit (examples/http
// binds 127.0.0.1:8080 itself; units from `baton units --fdstore 8`) keeps
// its listening socket in systemd's fd store. Under keep-alive and
// new-connection load: 5 `systemctl restart`s, then 10 reloads with a
// `kill -9` of the main process (Restart=on-failure) after reloads 4, 7
// and 10, then 3 times a reload followed by a restart. No request fails but
// those in flight on a killed process: no connection is refused, none
// times out. The store holds the one socket throughout (only the first
// generation of each start stores it; a successor inherits it) and is
// empty after `systemctl stop`.
//
// A restart right after a reload stops a main process that systemd did not
// start itself. systemd does not wait for such a process: without the
// units' ExecStop=baton stop it would follow SIGTERM with SIGKILL at once
// and the requests in flight would fail (observed on 252 and 254); the
// journal check below sees any such kill.
func TestScenario4FDStore(t *testing.T) {
	const (
		unit     = "s4.service"
		restarts = 5
		reloads  = 2 * restarts
	)
	p := buildProduct(t)
	box := boxWithProduct(t, Config{})
	units := p.units(t, "--name", "s4", "--exec", p.http+" -listen 127.0.0.1:8080", "--fdstore", "8")
	checkFDStoreUnits(t, units)
	// 9 starts in a few seconds: above the default start limit (5 in 10 s).
	dropIn(units, unit, "[Unit]\nStartLimitBurst=20\n")
	install(t, box, units)
	box.Systemctl("start", unit)
	checkStore(t, box, unit, "after start", 1)

	start := time.Now()
	load := box.StartLoad(t.Context(), LoadConfig{URL: httpURL})
	load.WaitRequests(100)
	mains := []int{box.MainPID(unit)}
	var kills []window
	next := func(what string) {
		t.Helper()
		main := waitNewMain(t, box, unit, mains[len(mains)-1])
		mains = append(mains, main)
		checkStore(t, box, unit, what, 1)
		load.WaitRequests(20) // load runs across every event
	}

	for i := range restarts {
		box.Systemctl("restart", unit)
		next("after restart " + strconv.Itoa(i+1))
	}
	if n := box.Show(unit, "NRestarts")["NRestarts"]; n != "0" {
		t.Errorf("NRestarts=%s after the restarts, want 0", n)
	}
	// Reloads, and a crash after reloads 4, 7 and 10: the process killed
	// inherited the socket from its predecessor, and between the kill and
	// the restart no process runs: connections wait in the stored
	// socket's backlog.
	for i := 1; i <= reloads; i++ {
		box.Systemctl("reload", unit)
		next("after reload " + strconv.Itoa(i))
		if i%3 == 1 && i > 1 {
			k := window{from: time.Now()}
			box.Run("kill", "-9", strconv.Itoa(mains[len(mains)-1]))
			k.to = time.Now()
			kills = append(kills, k)
			next("after the kill after reload " + strconv.Itoa(i))
		}
	}
	if n := box.Show(unit, "NRestarts")["NRestarts"]; n != strconv.Itoa(len(kills)) {
		t.Errorf("NRestarts=%s after the kills, want %d", n, len(kills))
	}
	// Restarts of a successor: the main process is not systemd's child.
	// (A manual restart resets NRestarts.)
	for i := range 3 {
		box.Systemctl("reload", unit)
		next("after reload " + strconv.Itoa(reloads+i+1))
		box.Systemctl("restart", unit)
		next("after the restart after reload " + strconv.Itoa(reloads+i+1))
	}
	res := load.Stop()
	inFlight := killedInFlight(res, kills)
	Report(t, "scenario 4: %s requests=%d failed=%d (in flight at a kill -9: %d) reloads=%d restarts=%d kills=%d duration=%v failures=%v",
		Machine(t), res.Requests, res.Failed, inFlight, reloads+3, restarts+3, len(kills), time.Since(start).Round(time.Millisecond), res.Failures)
	if res.Failed != int64(inFlight) {
		t.Errorf("scenario 4: %d of %d requests failed, %d of them in flight at a kill: %v",
			res.Failed, res.Requests, inFlight, res.Samples)
	}
	if res.Requests == 0 {
		t.Error("scenario 4: no request made")
	}
	checkServedBy(t, box, res, mains)
	// Each kill is a crash systemd reports, and nothing else is: no
	// restart ended in a kill, no notify error, no fd store warning.
	checkJournal(t, box, unit, "Main process exited, code=", "Failed with result")
	j := box.Journal(unit)
	if n := strings.Count(j, "Main process exited, code=killed, status=9/KILL"); n != len(kills) {
		t.Errorf("journal of %s: %d main processes killed, want %d:\n%s", unit, n, len(kills), j)
	}
	if strings.Contains(j, "fd store") || strings.Contains(j, "FDSTORE") {
		t.Errorf("journal of %s mentions the fd store:\n%s", unit, j)
	}

	box.Systemctl("stop", unit)
	checkStore(t, box, unit, "after stop", 0)
	if c, err := box.Dial(t.Context(), "tcp", "127.0.0.1:8080"); err == nil {
		c.Close()
		t.Error("127.0.0.1:8080 accepts connections after stop: the socket outlived the unit")
	} else if classify(err) != FailRefused {
		t.Errorf("dial after stop: %v, want connection refused", err)
	}
}

// checkFDStoreUnits checks that `baton units --fdstore` generated a lone
// service with an fd store, Restart=on-failure and loopback-only IP rules.
func checkFDStoreUnits(t *testing.T, units map[string]string) {
	t.Helper()
	svc, ok := units["s4.service"]
	if !ok || len(units) != 1 {
		t.Fatalf("baton units --fdstore: got %d files, want s4.service only", len(units))
	}
	for _, want := range []string{
		"FileDescriptorStoreMax=8",
		"Restart=on-failure",
		"IPAddressAllow=localhost",
		"IPAddressDeny=any",
	} {
		if !strings.Contains(svc, "\n"+want+"\n") {
			t.Errorf("s4.service lacks %s:\n%s", want, svc)
		}
	}
}

// checkStore fails the test unless the unit's fd store holds n fds.
func checkStore(t *testing.T, box *Box, unit, when string, n int) {
	t.Helper()
	if got := box.Show(unit, "NFileDescriptorStore")["NFileDescriptorStore"]; got != strconv.Itoa(n) {
		t.Errorf("%s: NFileDescriptorStore=%q, want %d", when, got, n)
	}
}

// window is a span of time, from the start of a kill to its end.
type window struct{ from, to time.Time }

// killedInFlight counts the failed requests that a kill -9 explains: a
// connection reset or closed that was opened before a kill ended and failed
// after it started. Nothing can save those (the kernel closes the
// connections the killed process had accepted); every other request,
// whatever its timing, must succeed: a connection opened after a kill finds
// the stored socket, its backlog or the restarted process, never a refusal.
func killedInFlight(res LoadResult, kills []window) int {
	n := 0
	for _, e := range res.Errors {
		if e.Kind != FailReset && e.Kind != FailEOF {
			continue
		}
		for _, k := range kills {
			if e.Dialed.Before(k.to) && e.Failed.After(k.from) {
				n++
				break
			}
		}
	}
	return n
}

//go:build linux

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/handoff"
)

// rollTimeout bounds one ansible-playbook run.
const rollTimeout = 5 * time.Minute

// rollResult is what a roll's report line says.
type rollResult struct {
	load    LoadResult
	seconds float64
}

// writeInventory writes the hosts' inventory: the nsenter connection into
// each box (ansible_nsenter_pid, a host PID), and the role's variables.
func writeInventory(t *testing.T, hosts []*fleetHost, baton string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("[baton]\n")
	for _, h := range hosts {
		fmt.Fprintf(&b, "%s ansible_nsenter_pid=%d\n", h.name, h.box.PID())
	}
	fmt.Fprintf(&b, `
[baton:vars]
ansible_connection=community.docker.nsenter
ansible_python_interpreter=/usr/bin/python3
ansible_remote_tmp=/tmp/.ansible
baton_service=%s
baton_binary_path=%s
baton_command=%s
baton_health_url=http://127.0.0.1:%d/healthz
`, fleetService, fleetBinary, baton, fleetPort)
	path := filepath.Join(t.TempDir(), "inventory.ini")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// roll runs deploy/ansible's roll.yml with binary as baton_binary_src
// (and extra, a JSON object of more variables, unless empty) while clients
// in the hub send requests through HAProxy, never retrying. It returns
// their counts, the playbook's output and its error.
func roll(t *testing.T, hub *Box, playbook, deploy, inventory, binary, extra string) (rollResult, string, error) {
	t.Helper()
	home := t.TempDir()
	args := []string{"-i", inventory, filepath.Join(deploy, "roll.yml"), "-e", "baton_binary_src=" + binary}
	if extra != "" {
		args = append(args, "-e", extra)
	}
	ctx, cancel := context.WithTimeout(t.Context(), rollTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, playbook, args...)
	cmd.Dir = deploy
	cmd.Env = append(os.Environ(),
		"ANSIBLE_HOME="+home, "ANSIBLE_LOCAL_TEMP="+filepath.Join(home, "tmp"),
		"ANSIBLE_NOCOLOR=1", "ANSIBLE_RETRY_FILES_ENABLED=0", "ANSIBLE_CONFIG="+filepath.Join(deploy, "ansible.cfg"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out

	start := time.Now()
	load := hub.StartLoad(t.Context(), LoadConfig{
		URL: "http://" + fleetLB + "/", KeepAlive: 2, NewConn: 2,
		Pause: 2 * time.Millisecond, MaxDuration: rollTimeout + time.Minute,
	})
	load.WaitRequests(200)
	err := cmd.Run()
	load.WaitRequests(200)
	res := load.Stop()
	return rollResult{load: res, seconds: time.Since(start).Seconds()}, out.String(), err
}

// fleetReport appends a roll's line to the e2e report and checks that no
// request failed.
func fleetReport(t *testing.T, r rollResult, format string, args ...any) {
	t.Helper()
	Report(t, "fleet: hosts=%d requests=%d failed=%d %s seconds=%.1f",
		fleetHosts, r.load.Requests, r.load.Failed, fmt.Sprintf(format, args...), r.seconds)
	if r.load.Failed != 0 {
		t.Errorf("%d of %d requests failed: %v %v", r.load.Failed, r.load.Requests, r.load.Failures, r.load.Samples)
	}
	if r.load.Requests == 0 {
		t.Errorf("no request made")
	}
}

// hostState is what the test reads of a host before and after a roll.
type hostState struct {
	main   int
	status handoff.Status
	binary [sha256.Size]byte // of fleetBinary
	files  []string          // the names in fleetBinary's directory
}

func fleetStates(t *testing.T, hosts []*fleetHost, baton string) []hostState {
	t.Helper()
	states := make([]hostState, len(hosts))
	for i, h := range hosts {
		s := &states[i]
		s.main = h.box.MainPID(fleetService)
		// In the service's network namespace (PrivateNetwork=yes), where
		// its control socket is.
		pid := strconv.Itoa(s.main)
		out := h.box.Run("nsenter", "--target", pid, "--net", "--", baton, "status", "--pid", pid, "--json")
		if err := json.Unmarshal([]byte(out), &s.status); err != nil {
			t.Fatalf("%s: baton status: %v\n%s", h.name, err, out)
		}
		path := filepath.Join(h.box.Root(), fleetBinary)
		s.binary = fileSum(t, path)
		entries, err := os.ReadDir(filepath.Dir(path))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			s.files = append(s.files, e.Name())
		}
	}
	return states
}

func fileSum(t *testing.T, path string) [sha256.Size]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(data)
}

// lastUpgrade returns the newest upgrade of s, or a zero record.
func lastUpgrade(s handoff.Status) handoff.UpgradeRecord {
	if len(s.Upgrades) == 0 {
		return handoff.UpgradeRecord{}
	}
	return s.Upgrades[len(s.Upgrades)-1]
}

// rolled counts the hosts that serve a new generation from binary after
// a roll.
func rolled(t *testing.T, before, after []hostState, binary string) int {
	t.Helper()
	sum, n := fileSum(t, binary), 0
	for i := range after {
		if after[i].binary == sum && after[i].status.Generation > before[i].status.Generation &&
			lastUpgrade(after[i].status).Outcome == handoff.OutcomeOK {
			n++
		}
	}
	return n
}

// checkUpgraded checks that h serves a new generation of want, whose
// upgrade succeeded, the previous binary kept beside it.
func checkUpgraded(t *testing.T, h *fleetHost, before, after hostState, want string) {
	t.Helper()
	if after.binary != fileSum(t, want) {
		t.Errorf("%s: %s is not %s", h.name, fleetBinary, want)
	}
	if after.main == before.main || after.status.Generation != before.status.Generation+1 {
		t.Errorf("%s: main %d generation %d -> main %d generation %d, want a new generation", h.name,
			before.main, before.status.Generation, after.main, after.status.Generation)
	}
	if u := lastUpgrade(after.status); u.Outcome != handoff.OutcomeOK || u.Generation != after.status.Generation {
		t.Errorf("%s: last upgrade %+v, want generation %d ok", h.name, u, after.status.Generation)
	}
	if strings.Join(after.files, " ") != "app app.prev" {
		t.Errorf("%s: files %v, want app and app.prev", h.name, after.files)
	}
}

// checkRolledBack checks that h's upgrade to the bad version was rolled
// back in its window, and that the rescue put want back and reloaded onto
// it: the generation after the rolled-back one serves, from want.
func checkRolledBack(t *testing.T, h *fleetHost, before, after hostState, want string) {
	t.Helper()
	if after.binary != fileSum(t, want) {
		t.Errorf("%s: %s is not %s: the previous binary was not put back", h.name, fleetBinary, want)
	}
	ups := after.status.Upgrades
	if len(ups) < 2 {
		t.Fatalf("%s: upgrades %+v, want a rollback then the rescue's reload", h.name, ups)
	}
	failed, rescue := ups[len(ups)-2], ups[len(ups)-1]
	if failed.Generation != before.status.Generation+1 || failed.Outcome != handoff.OutcomeRolledBack {
		t.Errorf("%s: upgrade %+v, want generation %d rolled back", h.name, failed, before.status.Generation+1)
	}
	if rescue.Outcome != handoff.OutcomeOK || after.status.Generation != rescue.Generation {
		t.Errorf("%s: upgrade %+v serving generation %d, want the rescue's reload ok", h.name, rescue, after.status.Generation)
	}
	if strings.Join(after.files, " ") != "app" {
		t.Errorf("%s: files %v, want app alone (app.prev renamed back)", h.name, after.files)
	}
}

// checkUntouched reports whether h is as it was: same main process and
// generation, same binary and files. It fails the test otherwise.
func checkUntouched(t *testing.T, h *fleetHost, before, after hostState, want string) bool {
	t.Helper()
	ok := after.main == before.main && after.status.Generation == before.status.Generation &&
		len(after.status.Upgrades) == len(before.status.Upgrades) && after.binary == before.binary &&
		after.binary == fileSum(t, want) && strings.Join(after.files, " ") == strings.Join(before.files, " ")
	if !ok {
		t.Errorf("%s: touched by the stopped roll: main %d generation %d files %v -> main %d generation %d files %v",
			h.name, before.main, before.status.Generation, before.files, after.main, after.status.Generation, after.files)
	}
	return ok
}

//go:build linux

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/rawhttp"
	"github.com/batonhq/baton/internal/testproc"
)

// The fleet's network, inside namespaces the test creates: a bridge in the
// hub box, each host's eth0 at fleetSubnet.(10+i).
const (
	fleetSubnet  = "10.231.0"
	fleetBridge  = "fleetbr0"
	fleetPort    = 8080 // each host's service
	fleetLB      = "127.0.0.1:8000"
	fleetBinary  = "/var/lib/fleet/app" // in each host's own /var
	fleetService = "app.service"
	fleetWindow  = time.Second // the service's watch window
	fleetHosts   = 3
)

// fleetHost is one host of the fleet: a box with an address of its own.
type fleetHost struct {
	name string // the inventory name: h1, h2, ...
	box  *Box
	addr string
}

// TestFleetAnsible rolls a new binary across three hosts with the playbook
// of deploy/ansible, behind HAProxy, under load from clients that never
// retry. Each host is a box (its own systemd and network namespace) with an
// address on a bridge in a fourth box, the hub, which runs HAProxy and the
// clients; Ansible reaches the hosts with the community.docker.nsenter
// connection (no sshd, no keys: it runs each command through nsenter(1)
// into the box's namespaces). The service is examples/http under the units
// of `baton units --watch-window`.
//
//   - Roll 1, serial 1: a good version to every host; each has a new
//     generation from the new binary, 0 failed requests.
//   - Roll 2, serial [1, "25%", "100%"]: e2e/internal/fleetserver, which
//     dies in its watch window on the second host only (a file in that
//     host's /etc): h1 takes it, h2's reload fails, the rescue puts the
//     previous binary back and reloads, the roll stops; h3 is untouched
//     (same binary, same main process); 0 failed requests.
//   - Roll 3: a binary that does not exist: h1 fails before its binary is
//     replaced, and the rescue leaves it as it was (no rename of an older
//     app.prev, no reload); the roll stops; every host is untouched.
//
// Each roll appends "fleet: hosts= requests= failed= rolled= seconds=" to
// the e2e report, the stopped ones with "stopped_at= untouched=".
func TestFleetAnsible(t *testing.T) {
	testproc.RequireRoot(t)
	playbook := testproc.LookPath(t, "ansible-playbook")
	haproxy := testproc.LookPath(t, "haproxy")
	// ansible-core alone lacks it; Debian's ansible package has it.
	doc := exec.CommandContext(t.Context(), testproc.LookPath(t, "ansible-doc"), "-t", "connection", "community.docker.nsenter")
	doc.Env = append(os.Environ(), "ANSIBLE_HOME="+t.TempDir())
	testproc.Require(t, doc.Run() == nil, "needs the community.docker collection (its nsenter connection)")
	testproc.LookPath(t, "ip")
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	deploy := filepath.Join(root, "deploy", "ansible")
	p := buildProduct(t)
	good := p.http
	bad := Build(t, "./e2e/internal/fleetserver")

	hub := boxWithProduct(t, Config{})
	nsRun(t, hub, "ip", "link", "add", fleetBridge, "type", "bridge")
	nsRun(t, hub, "ip", "addr", "add", fleetSubnet+".1/24", "dev", fleetBridge)
	nsRun(t, hub, "ip", "link", "set", fleetBridge, "up")

	units := p.units(t, "--name", "app",
		"--exec", fmt.Sprintf("%s -listen 0.0.0.0:%d -watch-window %s", fleetBinary, fleetPort, fleetWindow),
		"--listen", fmt.Sprintf("http=tcp://0.0.0.0:%d", fleetPort),
		"--watch-window", fleetWindow.String())
	hosts := make([]*fleetHost, fleetHosts)
	for i := range hosts {
		h := &fleetHost{name: fmt.Sprintf("h%d", i+1), box: boxWithProduct(t, Config{}), addr: fmt.Sprintf("%s.%d", fleetSubnet, 11+i)}
		hosts[i] = h
		link(t, hub, h)
		installBinary(t, h, good)
		install(t, h.box, units)
		h.box.Systemctl("start", "app-http.socket", fleetService)
	}
	// Host 2's own state trips the bad release (see fleetserver).
	if err := os.WriteFile(filepath.Join(hosts[1].box.Root(), "etc", "fleetserver-crash"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	startHAProxy(t, hub, haproxy, hosts)
	inventory := writeInventory(t, hosts, p.baton)

	// Roll 1: a good version (a new copy of examples/http) everywhere.
	v1 := privateCopy(t, good)
	before := fleetStates(t, hosts, p.baton)
	res, out, err := roll(t, hub, playbook, deploy, inventory, v1, "")
	if err != nil {
		t.Fatalf("roll 1: %v\n%s", err, out)
	}
	after := fleetStates(t, hosts, p.baton)
	for i, h := range hosts {
		checkUpgraded(t, h, before[i], after[i], good)
	}
	fleetReport(t, res, "rolled=%d", rolled(t, before, after, v1))

	// Roll 2: the bad version, a canary batch then the rest.
	before = after
	res, out, err = roll(t, hub, playbook, deploy, inventory, bad, `{"baton_serial": [1, "25%", "100%"]}`)
	t.Logf("roll 2: ansible-playbook printed:\n%s", out)
	if err == nil {
		t.Fatalf("roll 2: ansible-playbook succeeded, want it to stop at h2")
	}
	after = fleetStates(t, hosts, p.baton)
	checkUpgraded(t, hosts[0], before[0], after[0], bad)
	checkRolledBack(t, hosts[1], before[1], after[1], good)
	untouched := 0
	for i, h := range hosts[2:] {
		if checkUntouched(t, h, before[2+i], after[2+i], good) {
			untouched++
		}
	}
	if !strings.Contains(out, "h2 rolled back to the previous binary") || !strings.Contains(out, "successor exited: exit status 1") {
		t.Errorf("roll 2: the output does not say that h2 was rolled back, and why")
	}
	for _, h := range hosts[2:] {
		if strings.Contains(out, "["+h.name+"]") {
			t.Errorf("roll 2: ansible ran a task on %s, after the host that failed", h.name)
		}
	}
	n := rolled(t, before, after, bad)
	if n != 1 {
		t.Errorf("roll 2: %d hosts run the new version, want 1 (h1)", n)
	}
	stopped := failedHosts(out)
	if strings.Join(stopped, " ") != hosts[1].name {
		t.Errorf("roll 2: failed hosts in the recap %v, want [%s]", stopped, hosts[1].name)
	}
	fleetReport(t, res, "rolled=%d stopped_at=%s untouched=%d", n, strings.Join(stopped, ","), untouched)
	for _, h := range hosts {
		// No restart: every upgrade, the rolled-back one included, was
		// a reload of the running service.
		if props := h.box.Show(fleetService, "NRestarts", "ActiveState"); props["NRestarts"] != "0" || props["ActiveState"] != "active" {
			t.Errorf("%s: %v, want active and no restart", h.name, props)
		}
		checkJournal(t, h.box, fleetService, "Reload failed")
	}
	if n := strings.Count(hosts[1].box.Journal(fleetService), "Reload failed for"); n != 1 {
		t.Errorf("%s: %d failed reloads in the journal, want 1 (the rolled-back upgrade; the rescue's reload succeeds)", hosts[1].name, n)
	}

	// Roll 3: a release that cannot even be copied. The first host fails
	// before its binary is replaced: the rescue must leave it alone (its
	// app.prev, from roll 2, is older than what serves).
	before = after
	res, out, err = roll(t, hub, playbook, deploy, inventory, filepath.Join(t.TempDir(), "missing"), "")
	if err == nil {
		t.Fatalf("roll 3: ansible-playbook succeeded with a missing binary\n%s", out)
	}
	after = fleetStates(t, hosts, p.baton)
	untouched = 0
	for i, h := range hosts {
		want := good
		if i == 0 {
			want = bad
		}
		if checkUntouched(t, h, before[i], after[i], want) {
			untouched++
		}
	}
	if !strings.Contains(out, "h1 not upgraded") {
		t.Errorf("roll 3: the output does not say that h1 was not upgraded:\n%s", out)
	}
	stopped = failedHosts(out)
	if strings.Join(stopped, " ") != hosts[0].name {
		t.Errorf("roll 3: failed hosts in the recap %v, want [%s]", stopped, hosts[0].name)
	}
	fleetReport(t, res, "rolled=%d stopped_at=%s untouched=%d", rolled(t, before, after, bad), strings.Join(stopped, ","), untouched)
}

// failedHosts returns the hosts that the PLAY RECAP of ansible-playbook's
// output lists with failed tasks.
func failedHosts(out string) []string {
	_, recap, _ := strings.Cut(out, "PLAY RECAP")
	var failed []string
	for _, line := range strings.Split(recap, "\n") {
		name, counts, ok := strings.Cut(line, " : ")
		if ok && !strings.Contains(counts, " failed=0 ") {
			failed = append(failed, strings.TrimSpace(name))
		}
	}
	return failed
}

// nsRun runs argv in the box's network namespace only (the host's mount
// and pid namespaces: ip's "netns PID" then names a host PID).
func nsRun(t *testing.T, box *Box, argv ...string) {
	t.Helper()
	args := append([]string{fmt.Sprintf("--net=/proc/%d/ns/net", box.PID()), "--"}, argv...)
	if out, err := exec.CommandContext(t.Context(), "nsenter", args...).CombinedOutput(); err != nil {
		t.Fatalf("nsenter %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// link gives h an eth0 with its address, the other end of a veth pair on
// the hub's bridge.
func link(t *testing.T, hub *Box, h *fleetHost) {
	t.Helper()
	veth := "fleet-" + h.name
	nsRun(t, hub, "ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", strconv.Itoa(h.box.PID()))
	nsRun(t, hub, "ip", "link", "set", veth, "master", fleetBridge, "up")
	nsRun(t, h.box, "ip", "addr", "add", h.addr+"/24", "dev", "eth0")
	nsRun(t, h.box, "ip", "link", "set", "eth0", "up")
}

// installBinary puts bin at fleetBinary in the host's own /var.
func installBinary(t *testing.T, h *fleetHost, bin string) {
	t.Helper()
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(h.box.Root(), fleetBinary)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		t.Fatal(err)
	}
}

// startHAProxy runs HAProxy in the hub's network namespace, in the foreground, balancing over
// the hosts with keep-alive on both sides, and waits until every host has
// answered through it. retries 0: a connection a host refuses is a failed
// request, never hidden by a retry on another host.
func startHAProxy(t *testing.T, hub *Box, haproxy string, hosts []*fleetHost) {
	t.Helper()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, `global
	maxconn 2000
defaults
	mode http
	option http-keep-alive
	timeout connect 5s
	timeout client 30s
	timeout server 30s
	timeout http-keep-alive 10s
	retries 0
frontend fleet
	bind %s
	default_backend app
backend app
	balance roundrobin
	http-reuse safe
	option httpchk GET /healthz
	http-response set-header X-Host %%s
`, fleetLB)
	for _, h := range hosts {
		fmt.Fprintf(&cfg, "\tserver %s %s:%d check inter 1s\n", h.name, h.addr, fleetPort)
	}
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	// In the hub's network namespace only: nsenter execs haproxy, the
	// test's own child, stopped by SIGTERM at the end.
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "nsenter", fmt.Sprintf("--net=/proc/%d/ns/net", hub.PID()), "--", haproxy, "-db", "-f", path)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("haproxy: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("haproxy:\n%s", log.String())
		}
	})
	seen := map[string]bool{}
	c := &rawhttp.Client{Addr: fleetLB, KeepAlive: false, Timeout: 5 * time.Second, Dial: hub.Dial}
	defer c.Close()
	waitFor(t, "every host to answer through haproxy", func() bool {
		select {
		case <-exited:
			t.Fatalf("haproxy exited: %s", log.String())
		default:
		}
		if h, err := c.Get("/"); err == nil {
			seen[h.Get("X-Host")] = true
		}
		return len(seen) == len(hosts)
	})
}

// Package e2e boots real, isolated systemd instances and proves baton's
// contracts against them: socket activation, sd_notify, MAINPID hand-over
// and `systemctl reload` under load, with zero failed requests.
//
// # Model
//
// A [Box] is the machine's own systemd (or another version overlaid on /usr,
// or a whole Debian root of another release) running as PID 1 of fresh pid,
// mount, network, uts, ipc and cgroup namespaces. It boots in well under a second and writes nothing to the host:
//
//   - /etc and /var are copy-on-write overlays whose upper layers live in the
//     box's state directory (/run/baton-e2e/NAME on the host);
//   - a tmpfs over /etc/systemd hides the host's enabled units, drop-ins and
//     generators; the box boots its own minimal target (basic.target only);
//   - journald is volatile; /run, /tmp, /var/tmp and /dev are private tmpfs;
//     /proc/sys and /sys are read-only;
//   - the box has its own cgroup directory on the host, removed at Close,
//     and its own loopback, the only network interface it has;
//   - the rest of / (/usr, the work tree) is the host's, so binaries built on
//     the host run in the box. Host directories that the box's tmpfs would
//     hide (a build directory under /run or /tmp) are made visible at the
//     same path with [Config.Share].
//
// The box's PID 1 is prepared by the test binary itself: [Boot] re-runs it
// (see [Main]) in the new namespaces, and that process mounts the box's file
// systems and execs /lib/systemd/systemd. Commands run inside the box through
// nsenter(1) ([Box.Command], [Box.Exec], [Box.Systemctl]); network clients
// dial from the box's network namespace ([Box.Dial], [Box.StartLoad]).
//
// A test package using it hands its TestMain to [Main]:
//
//	func TestMain(m *testing.M) { e2e.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		app := e2e.Build(t, "./cmd/app") // into e2e.BuildDir(t)
//		box := e2e.Boot(t, e2e.Config{Share: []string{e2e.BuildDir(t)}})
//		box.Install(filepath.Join(dir, "app.socket"), filepath.Join(dir, "app.service")) // ExecStart= names app
//		box.Systemctl("start", "app.socket")
//		load := box.StartLoad(t.Context(), e2e.LoadConfig{URL: "http://127.0.0.1:8080/"})
//		box.Systemctl("reload", "app.service")
//		res := load.Stop()
//		...
//	}
//
// Units under test refer to binaries by their host path: build them into a
// directory given in Config.Share (see [BuildDir]).
//
// The package's own tests are the product's end-to-end scenarios, each
// logging "scenario N: systemd=V requests=... failed=... reloads=...
// duration=...":
// reloads under keep-alive and new-connection load with units from `baton
// units` (1), a broken new binary (2), the hardened default units (3),
// restarts and crashes of a service that keeps its own socket in systemd's
// fd store (4), the watchdog (5), `baton run` around a go-systemd Go server
// and a libsystemd C server, and under the hardened units of `baton units
// --run` (6), Type=notify-reload on systemd 253+ (7), a
// stop during a reload (8), and 50 reloads of the hardened units each with a
// seeded random fault: SIGKILL of the successor or of the main process,
// SIGSTOP/SIGCONT of either, concurrent reloads (9; BATON_CHAOS_SEED
// replays a run, requests on connections a killed process held are counted
// apart as lost), the watch window of examples/http with its successor
// killed in it or not (10), and `baton run` around sdserver with a pool of
// workers upgraded rolling and with a watch window (11). The test servers are e2e/internal/sdserver (6, 11) and
// e2e/testdata/sdserver.c (6).
//
// TestFleetAnsible rolls deploy/ansible's playbook across three boxes, each
// with an address on a bridge in a fourth box (the hub) that runs HAProxy
// and the clients, reaching them with Ansible's community.docker.nsenter
// connection; it logs "fleet: hosts=... requests=... failed=... rolled=..."
// per roll (see docs/fleet.md). Its bad release is e2e/internal/fleetserver.
//
// A second systemd version (Debian bookworm-backports' 254, unpacked by
// .ci/fetch-systemd into BATON_SYSTEMD_TREE, default
// /var/cache/baton/systemd-bpo) is overlaid on /usr in boxes booted with
// [Config.SystemdTree]; [SystemdTree] finds it, skipping the test when it is
// missing except under CI=true.
//
// # Releases
//
// Newer releases need a newer C library than Debian 12's, so they cannot be
// overlaid on its /usr: .ci/systemd-tree builds a minimal Debian root of
// trixie (257) and sid (the newest) with debootstrap into
// BATON_SYSTEMD_ROOTS (default /var/cache/baton, systemd-trixie and
// systemd-sid), and [Config.Root] boots one whole: a copy-on-write overlay
// of the tree becomes the box's / (pivot_root), with the shared
// directories bound at their host paths. Go binaries built on the host run
// there (the C library is backward compatible); a C program links the
// release's own libsystemd ([Release.BuildC]). [Releases] lists the
// machine's systemd, the 254 tree and the roots; scenarios 1, 2, 3, 6, 10
// and 11 run once per release and 7 on each from 253 on, as subtests named
// "systemd=N", each report line naming its release ("scenario 1:
// systemd=257 ..."). The roots run fewer rounds ([Release.Rounds]); the
// 254 tree and the machine's run the full count. A missing tree or root
// skips its release on a laptop and fails under CI=true.
//
// # Traps
//
//   - Everything needs root; tests call testproc.RequireRoot, which fails
//     under CI=true.
//   - The box's loopback is not the host's: a client in the test process must
//     dial through [Box.Dial] (a thread that joined the box's network
//     namespace creates the socket), never with a plain net.Dial.
//   - Processes started with [Box.Command] live in the box's pid namespace (they
//     die with it) but in the host's cgroup of the test process.
//   - The helpers that take no error (Systemctl, Show, Journal, Install)
//     call t.Fatal: use them from the test's goroutine only.
//   - Close always powers the box off (SIGRTMIN+4, SIGKILL after
//     PowerOffTimeout) and removes its cgroup and state; it runs from
//     t.Cleanup, so also when a test fails. When the whole test binary is
//     killed (go test -timeout), the kernel kills the box (parent-death
//     signal), and the next Boot removes the directories it left behind.
//   - The host's cgroup2 may have no controllers (a hybrid host):
//     MemoryMax=, CPUQuota= are then not enforced inside the box.
package e2e

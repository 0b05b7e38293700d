package handoff

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/control"
	"github.com/batonhq/baton/internal/testproc"
)

// reload asks pid for an upgrade as `baton reload` does.
func reload(t testing.TB, pid int) (int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	return control.Reload(ctx, pid)
}

func mustReload(t testing.TB, pid int) int {
	t.Helper()
	next, err := reload(t, pid)
	if err != nil {
		t.Fatalf("reload of %d: %v", pid, err)
	}
	return next
}

// stop sends SIGTERM to the main process and waits for its clean exit.
func (s *service) stop(main int) {
	s.t.Helper()
	if err := syscall.Kill(main, syscall.SIGTERM); err != nil {
		s.t.Fatal(err)
	}
	if ws := s.waitExit(main); ws.ExitStatus() != 0 {
		s.t.Errorf("main %d exited with %v", main, ws)
	}
}

func TestUpgradesUnderLoad(t *testing.T) {
	checkLeaks(t)
	upgrades := 100
	if testing.Short() {
		upgrades = 20
	}
	if n, err := strconv.Atoi(os.Getenv("BATON_UPGRADES")); err == nil && n > 1 {
		upgrades = n // longer runs by hand: BATON_UPGRADES=1000
	}
	s := startService(t, serviceOpts{})
	main := mustReload(t, s.gen1) // the first successor, to compare fd counts with
	first := main
	s.waitExit(s.gen1)
	fds := fdCount(first)

	l := startLoad(s.addr, 4, 4)
	start := time.Now()
	prev := main
	for range upgrades - 1 {
		prev, main = main, mustReload(t, main)
	}
	took := time.Since(start)
	l.stop()
	t.Logf("%d upgrades in %s (%.1f ms each) under load: %d requests, %d failures",
		upgrades, took.Round(time.Millisecond), float64(took.Milliseconds())/float64(upgrades-1),
		l.requests.Load(), l.failures.Load())
	if n := l.failures.Load(); n > 0 {
		t.Errorf("%d failed requests, first ones:\n%s", n, strings.Join(l.errs, "\n"))
	}
	if l.requests.Load() == 0 {
		t.Error("no request served")
	}
	s.waitExit(prev) // until then it may take a new connection
	if pid, err := s.get(""); err != nil || pid != main {
		t.Errorf("after the upgrades: served by %d (%v), want main %d", pid, err, main)
	}
	// The last generation holds as many fds as the second once idle.
	deadline := time.Now().Add(wait)
	for fdCount(main) != fds && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := fdCount(main); n != fds {
		t.Errorf("generation %d holds %d fds, the second held %d", upgrades+1, n, fds)
	}
	s.stop(main)
	s.notes.waitFor(t, "STOPPING=1 from the last main", has(main, "STOPPING=1"))
}

// TestNotifySequence checks every datagram the manager gets during one
// upgrade and a stop, from which process.
func TestNotifySequence(t *testing.T) {
	checkLeaks(t)
	s := startService(t, serviceOpts{})
	old := s.gen1
	next := mustReload(t, old)
	s.waitExit(old)
	s.notes.waitFor(t, "STATUS from the successor", has(next, "STATUS=serving, generation 2"))
	s.stop(next)
	msgs := s.notes.waitFor(t, "STOPPING=1", has(next, "STOPPING=1"))

	type want struct {
		pid    int
		prefix string
	}
	wants := []want{
		{old, "READY=1\nSTATUS=serving, generation 1"},
		{old, "RELOADING=1\nMONOTONIC_USEC="},
		{old, "MAINPID=" + strconv.Itoa(next) + "\nREADY=1"},
		{old, "BARRIER=1"},
		{next, "STATUS=serving, generation 2, pid " + strconv.Itoa(next)},
		{next, "STOPPING=1"},
	}
	if len(msgs) != len(wants) {
		t.Fatalf("got %d messages, want %d: %v", len(msgs), len(wants), msgs)
	}
	for i, w := range wants {
		if msgs[i].pid != w.pid || !strings.HasPrefix(msgs[i].text, w.prefix) {
			t.Errorf("message %d = %d %q, want %d %q...", i, msgs[i].pid, msgs[i].text, w.pid, w.prefix)
		}
	}
	if m := msgs[2].text; m != "MAINPID="+strconv.Itoa(next)+"\nREADY=1" {
		t.Errorf("hand-over datagram %q carries more than MAINPID and READY", m)
	}
}

// TestGoSystemdActivation: every generation's sockets are accepted by
// go-systemd's activation package (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES).
func TestGoSystemdActivation(t *testing.T) {
	s := startService(t, serviceOpts{})
	main := s.gen1
	for range 2 {
		main = mustReload(t, main)
	}
	h, err := getHeaders("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Get("X-Activation"); got != "http" {
		t.Errorf("go-systemd activation in generation %s saw %q, want http", h.Get("X-Generation"), got)
	}
	s.stop(main)
}

func TestUnixSocketSurvives(t *testing.T) {
	testproc.CheckFDs(t)
	path := t.TempDir() + "/s.sock"
	s := startService(t, serviceOpts{env: []string{envUnix + "=" + path}})
	main := s.gen1
	for i := range 3 {
		prev := main
		main = mustReload(t, main)
		s.waitExit(prev) // until then it may take a new connection
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("after upgrade %d: %v", i+1, err)
		}
		if pid, err := unixGet(path); err != nil || pid != main {
			t.Fatalf("after upgrade %d: unix socket served by %d (%v), want %d", i+1, pid, err, main)
		}
	}
	s.stop(main)
	if _, err := os.Stat(path); err != nil {
		t.Errorf("path gone after stop: %v", err)
	}
}

// TestFDStore: generation 1 puts the unix socket it bound itself (not the
// inherited TCP one) into the manager's fd store, once, before READY=1;
// its successors inherit it and store nothing.
func TestFDStore(t *testing.T) {
	testproc.CheckFDs(t)
	path := t.TempDir() + "/s.sock"
	s := startService(t, serviceOpts{env: []string{envUnix + "=" + path}})
	next := mustReload(t, s.gen1)
	s.waitExit(s.gen1)
	s.stop(next)
	msgs := s.notes.waitFor(t, "STOPPING=1", has(next, "STOPPING=1"))
	var stored []message
	storedBeforeReady := false
	for _, m := range msgs {
		if strings.HasPrefix(m.text, "FDSTORE=") {
			stored = append(stored, m)
		}
		if m.pid == s.gen1 && strings.HasPrefix(m.text, "READY=1") {
			storedBeforeReady = len(stored) == 1
		}
	}
	if len(stored) != 1 || stored[0].pid != s.gen1 || stored[0].text != "FDSTORE=1\nFDNAME=sock" {
		t.Fatalf("fd store messages %v, want one \"FDSTORE=1\\nFDNAME=sock\" from generation 1 (pid %d)", stored, s.gen1)
	}
	if !storedBeforeReady {
		t.Errorf("FDSTORE did not come before READY=1: %v", msgs)
	}
	if got := stored[0].local; len(got) != 1 || got[0] != path {
		t.Errorf("FDSTORE carried sockets bound at %q, want [%q]", got, path)
	}
}

// TestReloadWhileDraining: generation 1 still has a request in flight
// (blocked until the test releases it) while two more upgrades happen; the
// request then completes on generation 1.
func TestReloadWhileDraining(t *testing.T) {
	testproc.CheckFDs(t)
	s := startService(t, serviceOpts{})
	c, err := dialHTTP("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if h, err := c.do("/"); err != nil || h.Get("X-Pid") != strconv.Itoa(s.gen1) {
		t.Fatalf("first request: %v %v", h, err)
	}
	gate := t.TempDir() + "/gate"
	if err := c.send("/?wait=" + gate); err != nil {
		t.Fatal(err)
	}
	g2 := mustReload(t, s.gen1)
	g3 := mustReload(t, g2)
	if s.exited(s.gen1) {
		t.Fatal("generation 1 exited with a request in flight")
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := c.receive()
	if err != nil {
		t.Fatalf("request in flight during two upgrades: %v", err)
	}
	if h.Get("X-Pid") != strconv.Itoa(s.gen1) {
		t.Errorf("in-flight request answered with %v, want X-Pid %d", h, s.gen1)
	}
	// The connection goes idle and is closed once idle for IdleGrace.
	if _, err := c.receive(); err == nil {
		t.Error("read after the in-flight request: got a response, want EOF")
	}
	s.waitExit(s.gen1)
	s.waitExit(g2)
	s.stop(g3)
}

// BenchmarkUpgrade measures one full upgrade cycle as `baton reload` sees
// it: request, successor start, readiness, MAINPID hand-over and BARRIER,
// reply. The old generations drain concurrently (idle: no load).
func BenchmarkUpgrade(b *testing.B) {
	s := startService(b, serviceOpts{})
	main := s.gen1
	for b.Loop() {
		main = mustReload(b, main)
	}
	s.stop(main)
}

// TestUDPUpgrades: a datagram socket passes from generation to generation;
// every datagram sent, one at a time, is answered, across the upgrades.
func TestUDPUpgrades(t *testing.T) {
	testproc.CheckFDs(t)
	s := startService(t, serviceOpts{udp: true})
	c, err := net.Dial("udp", s.udpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ask := func(i int) string {
		t.Helper()
		msg := "ping " + strconv.Itoa(i)
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(wait))
		buf := make([]byte, 2048)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		pid, rest, _ := strings.Cut(string(buf[:n]), " ")
		if rest != msg {
			t.Fatalf("datagram %d answered %q", i, buf[:n])
		}
		return pid
	}
	main, prev := s.gen1, 0
	seen := map[string]bool{}
	for i := range 10 {
		results := reloadAsync(t, main)
		seen[ask(i)] = true
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		prev, main = main, r.pid
	}
	s.waitExit(prev) // until then it may read a datagram
	if got := ask(10); got != strconv.Itoa(main) {
		t.Errorf("answered by %s, want main %d", got, main)
	}
	t.Logf("10 upgrades; datagrams answered by %d generations", len(seen))
	s.stop(main)
}

// TestWatchdogMovesToSuccessor: the main generation pings the watchdog; at
// the hand-over the old one stops (it says nothing after BARRIER) and the
// successor takes over.
func TestWatchdogMovesToSuccessor(t *testing.T) {
	s := startService(t, serviceOpts{env: []string{"WATCHDOG_USEC=20000"}})
	s.notes.waitFor(t, "WATCHDOG=1 from generation 1", has(s.gen1, "WATCHDOG=1"))
	next := mustReload(t, s.gen1)
	s.notes.waitFor(t, "WATCHDOG=1 from generation 2", has(next, "WATCHDOG=1"))
	s.waitExit(s.gen1)
	msgs := s.notes.waitFor(t, "", func([]message) bool { return true })
	barrier := -1
	for i, m := range msgs {
		if m.pid == s.gen1 && m.text == "BARRIER=1" {
			barrier = i
		}
	}
	if barrier < 0 {
		t.Fatal("no BARRIER=1 from generation 1")
	}
	for _, m := range msgs[barrier+1:] {
		if m.pid == s.gen1 {
			t.Errorf("generation 1 said %q after the hand-over", m.text)
		}
	}
	s.stop(next)
}

// TestFilePassedOn: a plain file opened by generation 1 reaches the later
// generations as the same open file, not reopened by name.
func TestFilePassedOn(t *testing.T) {
	testproc.CheckFDs(t)
	path := filepath.Join(t.TempDir(), "journal")
	s := startService(t, serviceOpts{env: []string{envJournal + "=" + path}})
	moved := path + ".moved"
	if err := os.Rename(path, moved); err != nil {
		t.Fatal(err)
	}
	main := s.gen1
	for range 2 {
		main = mustReload(t, main)
	}
	b, err := os.ReadFile(moved)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), "generation 1\ngeneration 2\ngeneration 3\n"; got != want {
		t.Errorf("journal = %q, want %q", got, want)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a later generation reopened the journal by name: %v", err)
	}
	s.stop(main)
}

// TestSuccessorEnvironment: successors get the environment generation 1
// started with, not the one its program changed at run time (before, a
// start-up PATH+= grew by one entry each generation).
func TestSuccessorEnvironment(t *testing.T) {
	testproc.CheckFDs(t)
	s := startService(t, serviceOpts{env: []string{envDrift + "=x"}})
	pid, prev := s.gen1, 0
	for range 3 {
		pid, prev = mustReload(t, pid), pid
	}
	testproc.WaitGone(t, prev) // until then it may take the connection
	h, err := getHeaders("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Get("X-Drift"); got != "x+" || h.Get("X-Pid") != strconv.Itoa(pid) {
		t.Errorf("generation 4 (pid %s, want %d) saw %s=%q, want \"x+\"", h.Get("X-Pid"), pid, envDrift, got)
	}
}

// TestListenMoves: a socket a generation bound itself follows the address
// the program asks for. A successor configured for another port binds it
// (before, it silently kept the old one); the old socket is not passed on
// and closes with the last generation that holds it. A socket no
// generation takes any more is not passed on either.
func TestListenMoves(t *testing.T) {
	testproc.CheckFDs(t)
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	a1, a2 := free(), free()
	conf := filepath.Join(t.TempDir(), "extra")
	if err := os.WriteFile(conf, []byte(a1), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startService(t, serviceOpts{env: []string{envExtra + "=" + conf}})
	servedBy := func(addr string) int {
		t.Helper()
		h, err := getHeaders("tcp", addr)
		if err != nil {
			return 0
		}
		pid, _ := strconv.Atoi(h.Get("X-Pid"))
		return pid
	}
	gen2 := mustReload(t, s.gen1)
	testproc.WaitGone(t, s.gen1)
	if got := servedBy(a1); got != gen2 {
		t.Fatalf("%s served by %d, want generation 2 (%d)", a1, got, gen2)
	}

	if err := os.WriteFile(conf, []byte(a2), 0o600); err != nil {
		t.Fatal(err)
	}
	gen3 := mustReload(t, gen2)
	testproc.WaitGone(t, gen2)
	if got := servedBy(a2); got != gen3 {
		t.Errorf("new address %s served by %d, want generation 3 (%d)", a2, got, gen3)
	}
	if !refusedSoon(a1) {
		t.Errorf("old address %s still accepts once no generation holds it", a1)
	}
	if got := servedBy(s.addr); got != gen3 {
		t.Errorf("the manager's socket served by %d, want %d", got, gen3)
	}
	gen4 := mustReload(t, gen3)
	testproc.WaitGone(t, gen3) // until then it may take a new connection
	if got := servedBy(a2); got != gen4 {
		t.Errorf("%s served by %d after the next upgrade, want %d", a2, got, gen4)
	}
	if names := startVar(t, gen4, "LISTEN_FDNAMES"); names != "http:extra" {
		t.Errorf("generation 4 was passed %q, want http:extra: the moved socket is passed on", names)
	}

	if err := os.WriteFile(conf, nil, 0o600); err != nil { // no longer served
		t.Fatal(err)
	}
	gen5 := mustReload(t, gen4)
	testproc.WaitGone(t, gen4)
	if !refusedSoon(a2) {
		t.Errorf("%s still accepts when no generation serves it", a2)
	}
	if got := servedBy(s.addr); got != gen5 {
		t.Errorf("the manager's socket served by %d, want %d", got, gen5)
	}
}

// startVar returns the variable key of the environment pid started with
// (/proc/PID/environ: New's unsetting does not change it).
func startVar(t *testing.T, pid int, key string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		t.Fatal(err)
	}
	for kv := range strings.SplitSeq(string(b), "\x00") {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

// TestStatus: a generation's status over the control socket (what `baton
// status` shows): its sockets, the history of upgrades that travelled to
// it (a failed one included), and an older generation still draining with
// its open connection.
func TestStatus(t *testing.T) {
	testproc.CheckFDs(t)
	faultFile := filepath.Join(t.TempDir(), "fault")
	s := startService(t, serviceOpts{env: []string{envFault + "=exit", envFaultFile + "=" + faultFile}})
	if err := os.WriteFile(faultFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := reload(t, s.gen1); !errors.Is(err, control.ErrFailed) {
		t.Fatalf("reload with a successor that exits = %v, want a failure", err)
	}
	gen2 := mustReload(t, s.gen1)
	// A request that outlives the next upgrade keeps generation 2 draining.
	testproc.WaitGone(t, s.gen1) // until then it may take the connection
	slow, err := dialHTTP("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if err := slow.send("/?ms=3000"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the request is in generation 2's handler
	gen3 := mustReload(t, gen2)

	st := status(t, gen3)
	if st.PID != gen3 || st.Generation != 3 || st.State != StateServing {
		t.Errorf("status: pid %d generation %d state %q, want %d 3 %q", st.PID, st.Generation, st.State, gen3, StateServing)
	}
	if len(st.Sockets) != 1 || st.Sockets[0].Name != "http" || st.Sockets[0].Kind != "tcp" || st.Sockets[0].Addr != s.addr {
		t.Errorf("sockets %+v, want http tcp %s", st.Sockets, s.addr)
	}
	var outcomes []string
	for _, u := range st.Upgrades {
		outcomes = append(outcomes, fmt.Sprintf("%d:%s", u.Generation, u.Outcome))
	}
	if got := strings.Join(outcomes, " "); got != "2:failed 2:ok 3:ok" || !strings.Contains(st.Upgrades[0].Reason, "exit status 3") {
		t.Errorf("upgrades %s (%+v), want 2:failed 2:ok 3:ok with the reason", got, st.Upgrades)
	}
	if c := st.Counters; c.UpgradesOK != 2 || c.UpgradesFailed != 1 || len(c.HandoffSeconds) != 2 {
		t.Errorf("counters %+v, want 2 ok, 1 failed, 2 hand-over durations", c)
	}
	if len(st.Draining) != 1 || st.Draining[0].PID != gen2 || st.Draining[0].Generation != 2 || st.Draining[0].Connections < 1 || st.Draining[0].Deadline.IsZero() {
		t.Errorf("draining %+v, want generation 2 (pid %d) with its connection", st.Draining, gen2)
	}
	if old := status(t, gen2); old.State != StateDraining || old.Connections < 1 {
		t.Errorf("generation 2 says state %q, %d connections; want draining with its connection", old.State, old.Connections)
	}
	if _, err := reload(t, gen2); err == nil || !strings.Contains(err.Error(), "already handed over") {
		t.Errorf("reload of a draining generation = %v, want it refused as handed over", err)
	}
	if _, err := slow.receive(); err != nil {
		t.Errorf("the slow request: %v", err)
	}
}

func status(t *testing.T, pid int) Status {
	t.Helper()
	b, err := control.Status(t.Context(), pid)
	if err != nil {
		t.Fatal(err)
	}
	var st Status
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("status %s: %v", b, err)
	}
	return st
}

// refusedSoon reports whether connections to addr are refused within a few
// seconds: a successor keeps the sockets it did not take by Ready (for a
// Listen after Ready) until its predecessor, which holds them too, has
// exited, and closes them as it sees that exit.
func refusedSoon(addr string) bool {
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return true
		}
		_ = c.Close()
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

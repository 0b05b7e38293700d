//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testproc"
	"golang.org/x/sys/unix"
)

// TestStatusHandoff: `baton status` of examples/http after two upgrades
// shows the serving generation, its socket and the history that travelled
// to it; --json is one object with the documented fields.
func TestStatusHandoff(t *testing.T) {
	testproc.CheckFDs(t)
	dir := t.TempDir()
	bin := buildExample(t, dir)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	pidfile := filepath.Join(dir, "pid")
	cmd := exec.Command(bin, "-listen", addr, "-pidfile", pidfile)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait() }()
	pid := testproc.WaitPIDFile(t, pidfile, 0)
	for range 2 {
		if r := baton(t, "reload", "--pid", strconv.Itoa(pid)); r.code != 0 {
			t.Fatalf("reload: %d %s", r.code, r.stderr)
		}
		pid = testproc.WaitPIDFile(t, pidfile, pid)
	}
	defer func() { _ = syscall.Kill(pid, syscall.SIGTERM); testproc.WaitGone(t, pid) }()

	r := baton(t, "status", "--pidfile", pidfile, "--json")
	if r.code != 0 {
		t.Fatalf("status --json: %d %s", r.code, r.stderr)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("status --json printed %q: %v", r.stdout, err)
	}
	for _, k := range []string{"pid", "generation", "state", "started", "exe", "sockets", "draining", "upgrades"} {
		if _, ok := st[k]; !ok {
			t.Errorf("status --json lacks %q: %s", k, r.stdout)
		}
	}
	if st["pid"] != float64(pid) || st["generation"] != float64(3) || st["state"] != "serving" {
		t.Errorf("status --json: pid %v generation %v state %v, want %d 3 serving", st["pid"], st["generation"], st["state"], pid)
	}
	ups, _ := st["upgrades"].([]any)
	if len(ups) != 2 {
		t.Fatalf("upgrades %v, want 2", st["upgrades"])
	}
	for _, k := range []string{"generation", "pid", "outcome", "started", "duration_ms"} {
		if _, ok := ups[1].(map[string]any)[k]; !ok {
			t.Errorf("an upgrade lacks %q: %v", k, ups[1])
		}
	}
	r = baton(t, "status", "--pid", strconv.Itoa(pid))
	if r.code != 0 || !strings.Contains(r.stdout, "generation 3, serving") || !strings.Contains(r.stdout, "http    tcp   "+addr) || !strings.Contains(r.stdout, "ok 2, failed 0") {
		t.Errorf("status table: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if r := baton(t, "status", "--pid", strconv.Itoa(1<<22+3)); r.code != exitNoServer {
		t.Errorf("status of no process = %d %q, want %d", r.code, r.stderr, exitNoServer)
	}
}

// TestStatusRun: `baton status` of `baton run` lists its children by
// generation.
func TestStatusRun(t *testing.T) {
	testproc.CheckFDs(t)
	dir := t.TempDir()
	bin := buildExample(t, dir)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	s := startRun(t, exec.Command(batonBin, "run", "--listen", "http=tcp://"+addr, "--", bin, "-listen", addr), "http://"+addr+"/")
	runPID := strconv.Itoa(s.cmd.Process.Pid)
	if r := baton(t, "reload", "--pid", runPID); r.code != 0 {
		t.Fatalf("reload: %d %s", r.code, r.stderr)
	}
	r := baton(t, "status", "--pid", runPID, "--json")
	var st struct {
		PID        int    `json:"pid"`
		Generation int    `json:"generation"`
		State      string `json:"state"`
		Sockets    []struct{ Name, Kind, Addr string }
		Children   []struct {
			PID        int    `json:"pid"`
			Generation int    `json:"generation"`
			State      string `json:"state"`
		} `json:"children"`
		Counters struct {
			OK int `json:"upgrades_ok"`
		} `json:"counters"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || r.code != 0 {
		t.Fatalf("status --json: %d %q %s: %v", r.code, r.stdout, r.stderr, err)
	}
	if st.PID != s.cmd.Process.Pid || st.Generation != 2 || st.State != "serving" || st.Counters.OK != 1 {
		t.Errorf("status %+v, want baton run's pid, generation 2, serving, 1 upgrade", st)
	}
	if len(st.Sockets) != 1 || st.Sockets[0].Name != "http" || st.Sockets[0].Addr != addr {
		t.Errorf("sockets %+v, want http at %s", st.Sockets, addr)
	}
	serving := 0
	for _, c := range st.Children {
		if c.State == "serving" {
			serving++
			if c.Generation != 2 {
				t.Errorf("serving child %+v, want generation 2", c)
			}
		}
	}
	if serving != 1 {
		t.Errorf("children %+v, want one serving", st.Children)
	}
}

func init() { testproc.Register("report-mode", reportMode) }

// reportMode writes whether fd 3 is non-blocking to the file named by its
// argument, then waits to be stopped.
func reportMode() {
	fl, err := unix.FcntlInt(3, unix.F_GETFL, 0)
	out := fmt.Sprintf("nonblock=%t err=%v", fl&unix.O_NONBLOCK != 0, err)
	_ = os.WriteFile(testproc.Args()[0], []byte(out), 0o600)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	<-sigs
}

// TestRunSocketsBlocking: the sockets baton run binds reach CMD in
// blocking mode, as systemd passes them (NonBlocking=no), so a program
// with a blocking accept loop works; describing them for the log and for
// `baton status` (getsockname, not net.FileListener, which sets
// O_NONBLOCK on the shared description) leaves the mode alone.
func TestRunSocketsBlocking(t *testing.T) {
	report := filepath.Join(t.TempDir(), "mode")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	child := testproc.Command(t, "report-mode", report)
	cmd := exec.Command(batonBin, append([]string{"run", "--ready=exec", "--ready-timeout", "100ms", "--listen", "http=tcp://" + addr, "--"}, child.Args...)...)
	cmd.Env = child.Env
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	var b []byte
	for deadline := time.Now().Add(30 * time.Second); len(b) == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		b, _ = os.ReadFile(report)
	}
	if string(b) != "nonblock=false err=<nil>" {
		t.Errorf("CMD's fd 3: %q, want blocking", b)
	}
}

// TestStatusJSONError: baton status --json prints an error object on
// stdout, as baton reload --json does, when no baton process answers.
func TestStatusJSONError(t *testing.T) {
	for _, cmd := range []string{"status", "reload"} {
		// The test process has no control socket.
		r := baton(t, cmd, "--pid", strconv.Itoa(os.Getpid()), "--json")
		var got struct{ Error, Code string }
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Errorf("baton %s --json: stdout %q is not a JSON object: %v", cmd, r.stdout, err)
		}
		if r.code != exitNoServer || got.Code != "no-server" || got.Error == "" || !strings.Contains(r.stderr, got.Error) {
			t.Errorf("baton %s --json: exit status %d, stdout %q, stderr %q; want %d, code no-server and the error on both", cmd, r.code, r.stdout, r.stderr, exitNoServer)
		}
	}
}

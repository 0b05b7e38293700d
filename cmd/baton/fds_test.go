//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testproc"
	"github.com/google/go-cmp/cmp"
)

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T, network string) int {
	t.Helper()
	var addr net.Addr
	switch network {
	case "tcp":
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = l.Addr()
		l.Close()
	case "udp":
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = c.LocalAddr()
		c.Close()
	}
	_, port, _ := net.SplitHostPort(addr.String())
	n, _ := strconv.Atoi(port)
	return n
}

// underSocketActivate runs `baton ARGS...` under systemd-socket-activate
// with the given listen arguments, and pokes the first address (a TCP
// connection, or a UDP datagram with datagram) until
// systemd-socket-activate, which waits for traffic, has exec'd baton and
// baton has exited.
func underSocketActivate(t *testing.T, datagram bool, listen []string, names []string, args ...string) result {
	t.Helper()
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	sa := testproc.LookPath(t, "systemd-socket-activate")
	var saArgs []string
	if datagram {
		saArgs = append(saArgs, "--datagram")
	}
	for _, l := range listen {
		saArgs = append(saArgs, "-l", l)
	}
	saArgs = append(saArgs, "--fdname="+strings.Join(names, ":"), batonBin)
	cmd := exec.Command(sa, append(saArgs, args...)...)
	type outcome struct {
		r   result
		err error
	}
	wait, err := startCmd(cmd)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan outcome, 1)
	go func() {
		r, err := wait()
		done <- outcome{r, err}
	}()

	network := "tcp"
	if datagram {
		network = "udp"
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case o := <-done:
			if o.err != nil {
				t.Fatal(o.err)
			}
			return o.r
		case <-deadline:
			_ = cmd.Process.Kill()
			o := <-done
			t.Fatalf("systemd-socket-activate %v did not finish\nstdout:\n%s\nstderr:\n%s", saArgs, o.r.stdout, o.r.stderr)
		case <-tick.C:
			if c, err := net.DialTimeout(network, listen[0], time.Second); err == nil {
				if datagram {
					_, _ = c.Write([]byte("x")) // lost if nobody listens yet: the next tick sends another
				}
				c.Close()
			}
		}
	}
}

func TestFDsJSON(t *testing.T) {
	var r result
	var tcpAddr, unixPath string
	// The port was free when chosen; try again in the rare case that
	// something took it before systemd-socket-activate bound it.
	for attempt := 0; ; attempt++ {
		tcpAddr = "127.0.0.1:" + strconv.Itoa(freePort(t, "tcp"))
		unixPath = filepath.Join(t.TempDir(), "admin.sock")
		r = underSocketActivate(t, false, []string{tcpAddr, unixPath}, []string{"http", "admin"}, "fds", "--json")
		if r.code == 0 || attempt == 2 || !strings.Contains(r.stderr, "in use") {
			break
		}
	}
	if r.code != 0 {
		t.Fatalf("exit status %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	want := []fdJSON{
		{FD: 3, Name: "http", Kind: "tcp", Listening: true, Network: "tcp", Addr: tcpAddr},
		{FD: 4, Name: "admin", Kind: "unix", Listening: true, Network: "unix", Addr: unixPath},
	}
	if diff := cmp.Diff(want, parseJSONLines(t, r.stdout)); diff != "" {
		t.Errorf("baton fds --json (-want +got):\n%s\nstderr:\n%s", diff, r.stderr)
	}
}

func TestFDsJSONDatagram(t *testing.T) {
	var r result
	var addr string
	for attempt := 0; ; attempt++ {
		addr = "127.0.0.1:" + strconv.Itoa(freePort(t, "udp"))
		r = underSocketActivate(t, true, []string{addr}, []string{"dns"}, "fds", "--json")
		if r.code == 0 || attempt == 2 || !strings.Contains(r.stderr, "in use") {
			break
		}
	}
	if r.code != 0 {
		t.Fatalf("exit status %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	want := []fdJSON{{FD: 3, Name: "dns", Kind: "udp", Listening: false, Network: "udp", Addr: addr}}
	if diff := cmp.Diff(want, parseJSONLines(t, r.stdout)); diff != "" {
		t.Errorf("baton fds --json (-want +got):\n%s", diff)
	}
}

func TestFDsText(t *testing.T) {
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t, "tcp"))
	r := underSocketActivate(t, false, []string{addr}, []string{"web"}, "fds")
	if r.code != 0 {
		t.Fatalf("exit status %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[1]), " ") != "3 web tcp yes "+addr {
		t.Errorf("baton fds printed:\n%s", r.stdout)
	}
}

func parseJSONLines(t *testing.T, out string) []fdJSON {
	t.Helper()
	var got []fdJSON
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var f fdJSON
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		got = append(got, f)
	}
	return got
}

func TestFDsNotActivated(t *testing.T) {
	for _, args := range [][]string{{"fds"}, {"fds", "--json"}} {
		r := baton(t, args...)
		if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "not socket-activated") {
			t.Errorf("baton %v: exit status %d, stdout %q, stderr %q; want 0, nothing, a note", args, r.code, r.stdout, r.stderr)
		}
	}
}

func TestFDsMalformed(t *testing.T) {
	sh := testproc.LookPath(t, "sh")
	// exec keeps the shell's pid, so LISTEN_PID=$$ is baton's.
	cmd := exec.Command(sh, "-c", `LISTEN_PID=$$ LISTEN_FDS=abc exec "$0" fds --json`, batonBin)
	r := batonCmd(t, cmd)
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "LISTEN_FDS") || !strings.Contains(r.stderr, "abc") {
		t.Errorf("exit status %d, stdout %q, stderr %q; want 1 and an error naming LISTEN_FDS=abc", r.code, r.stdout, r.stderr)
	}
}

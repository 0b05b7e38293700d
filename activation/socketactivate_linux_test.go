package activation

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/batonhq/baton/internal/testproc"
)

// bound is a safety net for a systemd-socket-activate that never starts
// its child; no test result depends on it.
const bound = 60 * time.Second

// freePort returns a loopback port that was free a moment ago; the caller
// retries when another process took it in between.
func freePort(t *testing.T, network string) string {
	t.Helper()
	var addr net.Addr
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = c.LocalAddr()
		_ = c.Close()
	} else {
		l := listenTCP(t)
		addr = l.Addr()
		_ = l.Close()
	}
	return addr.String()
}

// socketActivate runs the receive helper under systemd-socket-activate with
// the given options; trigger is called once the tool listens on every
// socket, to wake it up, and returns whether the tool must then be stopped
// (with --accept it keeps listening). The listen addresses may hold "TCP" or "UDP", replaced by a
// free loopback address; a run that finds it taken is retried.
func socketActivate(t *testing.T, opts []string, listen []string, helperArgs []string,
	trigger func(t *testing.T, addrs []string) (stop bool),
) (report, []string, string) {
	t.Helper()
	tool := testproc.LookPath(t, "systemd-socket-activate")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for attempt := 0; ; attempt++ {
		addrs := make([]string, len(listen))
		args := slices.Clone(opts)
		for i, l := range listen {
			switch l {
			case "TCP":
				l = freePort(t, "tcp")
			case "UDP":
				l = freePort(t, "udp")
			}
			addrs[i] = l
			args = append(args, "--listen="+l)
		}
		args = append(args, "--setenv="+testproc.EnvHelper+"=receive", "--setenv="+noRaceExitSleep(), "--", exe, "-test.run=^$", "--")
		args = append(args, helperArgs...)
		r, log, inUse := runSocketActivate(t, tool, args, len(listen), func() bool { return trigger(t, addrs) })
		if inUse && attempt < 5 {
			t.Logf("address taken, retrying: %s", log)
			continue
		}
		if inUse {
			t.Fatalf("no free address after %d attempts: %s", attempt+1, log)
		}
		return r, addrs, log
	}
}

func runSocketActivate(t *testing.T, tool string, args []string, sockets int, trigger func() bool) (r report, log string, inUse bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), bound)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.Env = withoutListenEnv(os.Environ())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var logBuf strings.Builder
	sc := bufio.NewScanner(stderr)
	listening := 0
	for listening < sockets && sc.Scan() {
		logBuf.WriteString(sc.Text() + "\n")
		if strings.HasPrefix(sc.Text(), "Listening on ") {
			listening++
		}
	}
	stopped := false
	out := bufio.NewReader(stdout)
	var line []byte
	if listening == sockets && trigger() {
		// The helper's report is one line; once it is there, stop the
		// tool (its children have their own copies of the pipes).
		line, _ = out.ReadBytes('\n')
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		stopped = true
	}
	more, _ := io.ReadAll(out)
	line = append(line, more...)
	rest, _ := io.ReadAll(stderr)
	logBuf.Write(rest)
	err = cmd.Wait()
	log = logBuf.String()
	if strings.Contains(log, "Address already in use") {
		return report{}, log, true
	}
	if listening < sockets || err != nil && !stopped {
		t.Fatalf("systemd-socket-activate %v: %v\n%s", args, err, log)
	}
	if err := json.Unmarshal(line, &r); err != nil {
		t.Fatalf("helper output %q: %v\n%s", line, err, log)
	}
	return r, log, false
}

func TestSystemdSocketActivate(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)

	t.Run("stream", func(t *testing.T) {
		dir := t.TempDir()
		web2 := filepath.Join(dir, "web.sock")
		admin := filepath.Join(dir, "admin.sock")
		r, addrs, log := socketActivate(t, []string{"--fdname=web:web:admin"}, []string{"TCP", web2, admin},
			[]string{"listeners:web", "listener:admin"},
			func(t *testing.T, addrs []string) bool {
				dialAndClose(t, "unix", addrs[2])
				return false
			})
		checkActivated(t, r, log)
		want := []string{
			`fd 3 "web" tcp listener ` + addrs[0],
			`fd 4 "web" unix listener ` + web2,
			`fd 5 "admin" unix listener ` + admin,
		}
		if diff := cmp.Diff(want, describeFiles(r.Files)); diff != "" {
			t.Errorf("Files (-want +got):\n%s", diff)
		}
		wantLookups := []string{
			"listeners:web -> *net.TCPListener tcp " + addrs[0] + "; *net.UnixListener unix " + web2,
			"listener:admin -> *net.UnixListener unix " + admin,
		}
		if diff := cmp.Diff(wantLookups, r.Lookups); diff != "" {
			t.Errorf("lookups (-want +got):\n%s", diff)
		}
	})

	t.Run("datagram", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "dns.sock")
		r, addrs, log := socketActivate(t, []string{"--datagram", "--fdname=dns:dns"}, []string{path, "UDP"},
			[]string{"packets:dns"},
			func(t *testing.T, addrs []string) bool {
				c, err := net.Dial("unixgram", addrs[0])
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if _, err := c.Write([]byte("wake up")); err != nil {
					t.Fatal(err)
				}
				return false
			})
		checkActivated(t, r, log)
		want := []string{`fd 3 "dns" unixgram ` + path, `fd 4 "dns" udp ` + addrs[1]}
		if diff := cmp.Diff(want, describeFiles(r.Files)); diff != "" {
			t.Errorf("Files (-want +got):\n%s", diff)
		}
		wantLookups := []string{"packets:dns -> *net.UnixConn unixgram " + path + "; *net.UDPConn udp " + addrs[1]}
		if diff := cmp.Diff(wantLookups, r.Lookups); diff != "" {
			t.Errorf("lookups (-want +got):\n%s", diff)
		}
	})

	t.Run("seqpacket", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "ctl.sock")
		r, _, log := socketActivate(t, []string{"--seqpacket", "--fdname=ctl"}, []string{path},
			[]string{"listener:ctl"},
			func(t *testing.T, addrs []string) bool {
				dialAndClose(t, "unixpacket", addrs[0])
				return false
			})
		checkActivated(t, r, log)
		if diff := cmp.Diff([]string{`fd 3 "ctl" unixpacket listener ` + path}, describeFiles(r.Files)); diff != "" {
			t.Errorf("Files (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"listener:ctl -> *net.UnixListener unixpacket " + path}, r.Lookups); diff != "" {
			t.Errorf("lookups (-want +got):\n%s", diff)
		}
	})

	// With --accept the tool keeps listening and starts one child per
	// connection, with the connected socket as fd 3. Unlike systemd's
	// Accept=yes (name "connection"), version 252 names it after
	// --fdname, and leaves LISTEN_FDNAMES unset without one.
	for _, tc := range []struct{ name, fdname, want string }{
		{"accept", "web", "web"},
		{"accept without fdname", "", NameUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "accept.sock")
			opts := []string{"--accept"}
			if tc.fdname != "" {
				opts = append(opts, "--fdname="+tc.fdname)
			}
			var greeted string
			r, _, log := socketActivate(t, opts, []string{path}, []string{"echo:" + tc.want},
				func(t *testing.T, addrs []string) bool {
					c, err := net.Dial("unix", addrs[0])
					if err != nil {
						t.Fatal(err)
					}
					defer c.Close()
					b, err := io.ReadAll(c) // until the child closes its end
					if err != nil {
						t.Fatal(err)
					}
					greeted = string(b)
					return true
				})
			if greeted != "hello" {
				t.Errorf("the child wrote %q, want hello", greeted)
			}
			checkActivated(t, r, log)
			if len(r.Files) != 1 || r.Files[0].Name != tc.want || r.Files[0].Kind != "unix" || r.Files[0].Listening ||
				r.Files[0].Addr != "unix "+path {
				t.Errorf("Files = %+v, want one connected unix socket %q on %s", r.Files, tc.want, path)
			}
		})
	}
}

func dialAndClose(t *testing.T, network, addr string) {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
}

func checkActivated(t *testing.T, r report, log string) {
	t.Helper()
	if r.Err != "" {
		t.Fatalf("Receive: %s\n%s", r.Err, log)
	}
	if len(r.EnvLeft) > 0 {
		t.Errorf("variables left set: %q", r.EnvLeft)
	}
	for _, f := range r.Files {
		if !f.Cloexec {
			t.Errorf("fd %d without close-on-exec", f.FD)
		}
	}
}

func describeFiles(files []reportFile) []string {
	var out []string
	for _, f := range files {
		d := "fd " + strconv.Itoa(f.FD) + " " + strconv.Quote(f.Name) + " " + f.Kind
		if f.Listening {
			d += " listener"
		}
		if a := strings.TrimPrefix(f.Addr, f.Kind+" "); a != "" && a != f.Addr {
			d += " " + a
		}
		out = append(out, d)
	}
	return out
}

package spawn

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/batonhq/baton/internal/pidfs"
	"github.com/batonhq/baton/internal/testproc"
)

func TestMain(m *testing.M) {
	testproc.Register("report", report)
	testproc.Register("ready", func() { _, _ = os.Stdout.Write([]byte{'r'}) })
	testproc.Main(m)
}

// report prints what a socket-activated process checks, one key=value per
// line.
func report() {
	fmt.Printf("pid_ok=%t\n", os.Getenv("LISTEN_PID") == strconv.Itoa(os.Getpid()))
	fmt.Printf("fds=%s\n", os.Getenv("LISTEN_FDS"))
	fmt.Printf("names=%s\n", os.Getenv("LISTEN_FDNAMES"))
	// LISTEN_PIDFDID as libsystemd 258+ checks it: "own", "unset", or
	// the value when it names another process.
	pidfdid := "unset"
	if v, ok := os.LookupEnv("LISTEN_PIDFDID"); ok {
		pidfdid = v
		if own, ok := pidfs.Self(); ok && strconv.FormatUint(own, 10) == v {
			pidfdid = "own"
		}
	}
	fmt.Printf("pidfdid=%s\n", pidfdid)
	_, exec := os.LookupEnv(EnvExec)
	_, fix := os.LookupEnv(EnvFix)
	fmt.Printf("markers=%t\n", exec || fix)
	fmt.Printf("pgrp=%d\n", syscall.Getpgrp())
	fmt.Printf("pid=%d\n", os.Getpid())
	// Every open fd and where it points; the test checks which are there.
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		fmt.Println("err=" + err.Error())
		return
	}
	names, _ := d.Readdirnames(-1)
	var open []string
	for _, n := range names {
		fd, _ := strconv.Atoi(n)
		if fd == int(d.Fd()) {
			continue
		}
		target, _ := os.Readlink("/proc/self/fd/" + n)
		open = append(open, n+">"+target)
	}
	_ = d.Close()
	fmt.Printf("open=%s\n", strings.Join(open, ","))
	// A socket at fd 3 must be usable as a listener.
	if ln, err := net.FileListener(os.NewFile(3, "fd3")); err == nil {
		fmt.Printf("fd3=%s\n", ln.Addr().Network())
		_ = ln.Close()
	}
}

func helperConfig(t *testing.T, name string) *Config {
	t.Helper()
	cmd := testproc.Command(t, name)
	return &Config{Path: cmd.Path, Args: cmd.Args, Env: cmd.Env, Stderr: os.Stderr}
}

func run(t *testing.T, c *Config) map[string]string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	c.Stdout = w
	p, err := Start(c)
	_ = w.Close()
	if err != nil {
		_ = r.Close()
		t.Fatal(err)
	}
	out, _ := io.ReadAll(r)
	_ = r.Close()
	st, err := p.Wait()
	if err != nil || !st.Success() {
		t.Fatalf("child: %v %v\n%s", st, err, out)
	}
	kv := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		kv[k] = v
	}
	return kv
}

func TestStart(t *testing.T) {
	testproc.CheckFDs(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lf, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	extra, err := os.Create(filepath.Join(t.TempDir(), "extra"))
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	// Descriptors without CLOEXEC in the parent must not leak either.
	leaky := nonCloexec(t)

	tests := []struct {
		name    string
		mode    Mode
		files   []*os.File
		names   []string
		extra   []*os.File
		group   bool
		wantFDs string
	}{
		{name: "trampoline", mode: Trampoline, files: []*os.File{lf}, names: []string{"http"}, wantFDs: "1"},
		{name: "selffix", mode: SelfFix, files: []*os.File{lf}, names: []string{"http"}, wantFDs: "1"},
		{name: "selffix extra", mode: SelfFix, files: []*os.File{lf}, names: []string{"http"}, extra: []*os.File{extra}, wantFDs: "1"},
		{name: "no files", mode: Trampoline, wantFDs: ""},
		{name: "trampoline group", mode: Trampoline, files: []*os.File{lf}, names: []string{"http"}, group: true, wantFDs: "1"},
		{name: "selffix group", mode: SelfFix, files: []*os.File{lf}, names: []string{"http"}, group: true, wantFDs: "1"},
	}
	// The caller's own LISTEN_PIDFDID, as systemd 258+ gave it (a
	// successor's or `baton run`'s environment still holds it): stale for
	// any child.
	stale := "LISTEN_PIDFDID=424242"
	wantPIDFDID := "unset"
	if own, ok := pidfs.Self(); ok {
		stale = "LISTEN_PIDFDID=" + strconv.FormatUint(own, 10)
		wantPIDFDID = "own"
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := helperConfig(t, "report")
			c.Env = append(c.Env, stale)
			c.Mode, c.Files, c.Names, c.Extra = tt.mode, tt.files, tt.names, tt.extra
			c.NewProcessGroup = tt.group
			kv := run(t, c)
			wantPgrp := strconv.Itoa(syscall.Getpgrp())
			if tt.group {
				wantPgrp = kv["pid"]
			}
			if kv["pgrp"] != wantPgrp {
				t.Errorf("child %s in process group %s, want %s (caller's %d)", kv["pid"], kv["pgrp"], wantPgrp, syscall.Getpgrp())
			}
			if len(tt.files) > 0 && kv["pid_ok"] != "true" {
				t.Errorf("LISTEN_PID is not the child's pid: %v", kv)
			}
			// Where the kernel has pidfs, the child's own pidfd inode
			// number, as systemd 258+ passes it; without pidfs, none.
			// Without files, no LISTEN_ variable at all.
			if want := map[bool]string{true: wantPIDFDID, false: "unset"}[len(tt.files) > 0]; kv["pidfdid"] != want {
				t.Errorf("LISTEN_PIDFDID in the child: %s, want %s (the caller's was %s)", kv["pidfdid"], want, stale)
			}
			if kv["fds"] != tt.wantFDs || kv["names"] != strings.Join(tt.names, ":") {
				t.Errorf("LISTEN_FDS=%q LISTEN_FDNAMES=%q, want %q %q", kv["fds"], kv["names"], tt.wantFDs, strings.Join(tt.names, ":"))
			}
			if kv["markers"] != "false" {
				t.Errorf("marker variables visible to the target")
			}
			for _, e := range strings.Split(kv["open"], ",") {
				fd, target, _ := strings.Cut(e, ">")
				n, _ := strconv.Atoi(fd)
				if n > 2 && n < 3+len(tt.files)+len(tt.extra) {
					continue
				}
				if target == leaky.Name() || target == extra.Name() && len(tt.extra) == 0 {
					t.Errorf("fd %d -> %s leaked into the child", n, target)
				}
			}
			if len(tt.files) > 0 && kv["fd3"] != "tcp" {
				t.Errorf("fd 3 is not the listener: %v", kv)
			}
		})
	}
	// The parent's listener still works (its blocking mode untouched).
	if ok := acceptsWithin(t, ln); !ok {
		t.Error("parent listener broken after spawn")
	}
}

func acceptsWithin(t *testing.T, ln net.Listener) bool {
	t.Helper()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return false
	}
	defer c.Close()
	a, err := ln.Accept()
	if err != nil {
		return false
	}
	_ = a.Close()
	return true
}

func TestMarkerNotInherited(t *testing.T) {
	// Markers that do not name our parent are ignored and removed.
	for _, env := range []string{EnvFix + "=1:0:-", EnvExec + "=1:0:-:/bin/false"} {
		cmd := testproc.Command(t, "report")
		cmd.Env = append(cmd.Env, env, "LISTEN_PID=1", "LISTEN_FDS=1")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", env, err)
		}
		if !strings.Contains(string(out), "pid_ok=false") || !strings.Contains(string(out), "markers=false") {
			t.Errorf("%s: stray marker acted on:\n%s", env, out)
		}
	}
}

func nonCloexec(t *testing.T) *os.File {
	t.Helper()
	name := filepath.Join(t.TempDir(), "leaky")
	if err := os.WriteFile(name, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Open(name, syscall.O_RDONLY, 0) // no O_CLOEXEC
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), name)
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func TestParseMarker(t *testing.T) {
	tests := []struct {
		in       string
		withPath bool
		want     marker
		ok       bool
	}{
		{in: "12:0:-", want: marker{ppid: 12, anchor: -1}, ok: true},
		{in: "12:3:5", want: marker{ppid: 12, keep: 3, anchor: 5}, ok: true},
		{in: "12:3:6", ok: false},
		{in: "12:3:2", ok: false},
		{in: "12:-1:-", ok: false},
		{in: "x:1:-", ok: false},
		{in: "0:1:-", ok: false},
		{in: "12:1", ok: false},
		{in: "12:1:-:/bin/true", withPath: true, want: marker{ppid: 12, keep: 1, anchor: -1, path: "/bin/true"}, ok: true},
		{in: "12:2:4:bin:x", withPath: true, want: marker{ppid: 12, keep: 2, anchor: 4, path: "bin:x"}, ok: true},
		{in: "12:1:-:", withPath: true, ok: false},
		{in: "12:1:-", withPath: true, ok: false},
	}
	for _, tt := range tests {
		got, ok := parseMarker(tt.in, tt.withPath)
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("parseMarker(%q, %t) = %+v %t, want %+v %t", tt.in, tt.withPath, got, ok, tt.want, tt.ok)
		}
	}
}

// BenchmarkStart measures start to "child main running" for each mode.
func BenchmarkStart(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	lf, _ := ln.(*net.TCPListener).File()
	defer lf.Close()
	for _, mode := range []Mode{Trampoline, SelfFix} {
		b.Run(mode.String(), func(b *testing.B) {
			cmd := testproc.Command(b, "ready")
			for b.Loop() {
				r, w, _ := os.Pipe()
				p, err := Start(&Config{Path: cmd.Path, Args: cmd.Args, Env: cmd.Env, Files: []*os.File{lf}, Stdout: w, Mode: mode})
				_ = w.Close()
				if err != nil {
					b.Fatal(err)
				}
				var buf [1]byte
				if _, err := r.Read(buf[:]); err != nil {
					b.Fatal(err)
				}
				_ = r.Close()
				_, _ = p.Wait()
			}
		})
	}
}

// TestChildOwnFDsKept: an fd the child has before its init runs, that the
// parent did not leak (here opened by a shell that then execs the target;
// in the field cgo or LD_PRELOAD code), survives; the parent's leaked fd
// does not. (Before, the init closed every fd that was not close-on-exec.)
func TestChildOwnFDsKept(t *testing.T) {
	testproc.CheckFDs(t)
	leaky := nonCloexec(t)
	own := filepath.Join(t.TempDir(), "own")
	if err := os.WriteFile(own, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []Mode{SelfFix, Trampoline} {
		t.Run(mode.String(), func(t *testing.T) {
			c := helperConfig(t, "report")
			sh := testproc.LookPath(t, "sh")
			c.Args = append([]string{sh, "-c", `exec 9<"$0"; exec "$@"`, own}, c.Args...)
			c.Path, c.Mode = sh, mode
			kv := run(t, c)
			var kept, leakedIn bool
			for _, e := range strings.Split(kv["open"], ",") {
				fd, target, _ := strings.Cut(e, ">")
				if fd == "9" && target == own {
					kept = true
				}
				if target == leaky.Name() {
					leakedIn = true
				}
			}
			if !kept {
				t.Errorf("the child's own fd 9 (%s) was closed: open %s", own, kv["open"])
			}
			if leakedIn {
				t.Errorf("the parent's leaked fd reached the target: open %s", kv["open"])
			}
		})
	}
}

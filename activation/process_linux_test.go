package activation

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/internal/testproc"
)

// activated is the environment of a helper started with n named fds.
func activated(names ...string) []string {
	return []string{envSelfPID + "=1", EnvFDs + "=" + strconv.Itoa(len(names)), EnvNames + "=" + strings.Join(names, ":")}
}

// fdRange returns first .. first+n-1.
func fdRange(first, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = first + i
	}
	return out
}

func without(fds, drop []int) []int {
	return slices.DeleteFunc(slices.Clone(fds), func(fd int) bool { return slices.Contains(drop, fd) })
}

func TestReceiveEveryKind(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	dir := t.TempDir()
	fs := fixtures(t, dir)
	// The misses first, while the Set still holds everything.
	lookups := []string{"listener:udp", "packet:nope", "conn:tcp"}
	for _, f := range fs {
		switch {
		case f.listening:
			lookups = append(lookups, "listener:"+f.name)
		case f.kind == KindUDP || f.kind == KindUnixDatagram:
			lookups = append(lookups, "packet:"+f.name)
		case f.kind.stream():
			lookups = append(lookups, "conn:"+f.name)
		default:
			lookups = append(lookups, "file:"+f.name)
		}
	}
	r := runHelper(t, "receive", filesOf(fs), activated(namesOf(fs)...), lookups...)
	if r.Err != "" {
		t.Fatalf("Receive: %s", r.Err)
	}
	passed := fdRange(FirstFD, len(fs))

	var want, got []reportFile
	for i, f := range fs {
		want = append(want, reportFile{Name: f.name, FD: FirstFD + i, Kind: f.kind.String(), Listening: f.listening, Addr: f.addr, Cloexec: true})
	}
	for _, f := range r.Files {
		f.Ino = 0
		got = append(got, f)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Files (-want +got):\n%s", diff)
	}
	if len(r.EnvLeft) > 0 {
		t.Errorf("variables left set: %q", r.EnvLeft)
	}
	for _, fd := range passed {
		if slices.Contains(r.CloexecBefore, fd) {
			t.Errorf("fd %d had FD_CLOEXEC before Receive: the check proves nothing", fd)
		}
	}
	// (The runtime may open its poller's fds on the way: new fds are fine.)
	if closed := changed(r.Before, r.After); len(closed) > 0 {
		t.Errorf("Receive closed fds %v", closed)
	}
	if left := stillOpen(r.Before, r.Closed, passed); len(left) > 0 {
		t.Errorf("inherited fds %v still open after the lookups and Close", left)
	}

	var have []string
	for _, f := range got {
		d := f.Kind
		switch {
		case f.Listening:
			d += " listener"
		case f.Kind == "tcp" || strings.HasPrefix(f.Kind, "unix") && f.Kind != "unixgram":
			d += " connection"
		}
		if a := strings.TrimPrefix(f.Addr, f.Kind); strings.TrimSpace(a) != "" {
			d += a
		}
		have = append(have, fmt.Sprintf("%q: %s", f.Name, d))
	}
	haveAll := strings.Join(have, ", ")
	wantLookups := []string{
		`listener:udp -> error: activation: no listening stream socket named "udp" (have ` + haveAll + `) [ErrNoSocket]`,
		`packet:nope -> error: activation: no datagram socket named "nope" (have ` + haveAll + `) [ErrNoSocket]`,
		`conn:tcp -> error: activation: no connected stream socket named "tcp" (have ` + haveAll + `) [ErrNoSocket]`,
		"listener:tcp -> *net.TCPListener " + fs[0].addr,
		"conn:conn -> *net.TCPConn " + fs[1].addr,
		"packet:udp -> *net.UDPConn " + fs[2].addr,
		"listener:unix -> *net.UnixListener " + fs[3].addr,
		"packet:unixgram -> *net.UnixConn " + fs[4].addr,
		"listener:unixpacket -> *net.UnixListener " + fs[5].addr,
		`file:fifo -> fd 9 "fifo" fifo`,
		`file:netlink -> fd 10 "netlink" ` + fs[7].addr,
	}
	next := 11
	if fs[8].name == "mqueue" {
		wantLookups = append(wantLookups, `file:mqueue -> fd 11 "mqueue" mqueue`)
		next++
	}
	wantLookups = append(wantLookups,
		fmt.Sprintf(`file:file -> fd %d "file" other`, next),
		"conn:pair -> *net.UnixConn unix @", // unnamed, as the net package prints it
	)
	if diff := cmp.Diff(wantLookups, r.Lookups); diff != "" {
		t.Errorf("lookups (-want +got):\n%s", diff)
	}
	// Nothing unlinked the socket paths.
	for _, p := range []string{"stream.sock", "dgram.sock", "seqpacket.sock", "fifo"} {
		if _, err := os.Lstat(dir + "/" + p); err != nil {
			t.Errorf("inherited path gone: %v", err)
		}
	}
	// Nothing shut the sockets down: the listeners still accept here.
	for _, i := range []int{0, 3, 5} {
		checkAccepts(t, fs[i])
	}
}

// checkAccepts accepts one connection on a listening socket fixture.
func checkAccepts(t *testing.T, f fixture) {
	t.Helper()
	l, err := net.FileListener(f.file)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if ul, ok := l.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false)
	}
	c, err := net.Dial(l.Addr().Network(), l.Addr().String())
	if err != nil {
		t.Errorf("%s: dial after the helper: %v", f.name, err)
		return
	}
	defer c.Close()
	s, err := l.Accept()
	if err != nil {
		t.Errorf("%s: accept after the helper: %v", f.name, err)
		return
	}
	_ = s.Close()
}

func intersect(a, b []int) []int {
	var out []int
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func TestReceiveNames(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	a, b, c := listenTCP(t), listenTCP(t), listenTCP(t)
	files := []*os.File{fileOf(t, a), fileOf(t, b), fileOf(t, c)}
	for _, f := range files {
		t.Cleanup(func() { _ = f.Close() })
	}
	addr := func(i int) string { return "*net.TCPListener tcp " + []net.Listener{a, b, c}[i].Addr().String() }
	tests := []struct {
		name      string
		env       []string
		args      []string
		wantNames []string
		want      []string
	}{
		{
			name:      "duplicate names",
			env:       activated("http", "admin", "http"),
			args:      []string{"listener:http", "listeners:http", "listener:admin"},
			wantNames: []string{"http", "admin", "http"},
			want: []string{
				`listener:http -> error: activation: 2 listening stream sockets named "http", want one (have ` +
					`"http": tcp listener ` + a.Addr().String() + `, "admin": tcp listener ` + b.Addr().String() +
					`, "http": tcp listener ` + c.Addr().String() + `) [ErrAmbiguous]`,
				"listeners:http -> " + addr(0) + "; " + addr(2),
				"listener:admin -> " + addr(1),
			},
		},
		{
			name:      "LISTEN_FDNAMES not set",
			env:       []string{envSelfPID + "=1", EnvFDs + "=3"},
			args:      []string{"listeners:unknown"},
			wantNames: []string{"unknown", "unknown", "unknown"},
			want:      []string{"listeners:unknown -> " + addr(0) + "; " + addr(1) + "; " + addr(2)},
		},
		{
			name:      "empty names",
			env:       activated("", "x", ""),
			args:      []string{"listeners:", "take:x"},
			wantNames: []string{"", "x", ""},
			want:      []string{"listeners: -> " + addr(0) + "; " + addr(2), `take:x -> fd 4 "x" tcp listener ` + b.Addr().String()},
		},
		{
			name:      "fewer fds than passed",
			env:       activated("only"),
			args:      []string{"listener:only"},
			wantNames: []string{"only"},
			want:      []string{"listener:only -> " + addr(0)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runHelper(t, "receive", files, tt.env, tt.args...)
			if r.Err != "" {
				t.Fatalf("Receive: %s", r.Err)
			}
			var names []string
			for _, f := range r.Files {
				names = append(names, f.Name)
			}
			if diff := cmp.Diff(tt.wantNames, names); diff != "" {
				t.Errorf("names (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, r.Lookups); diff != "" {
				t.Errorf("lookups (-want +got):\n%s", diff)
			}
			if len(r.EnvLeft) > 0 {
				t.Errorf("variables left set: %q", r.EnvLeft)
			}
		})
	}
}

// TestReceiveBadInput replays every bad input of TestParseBadInput through
// Receive in a real process, plus those only real fds can show.
func TestReceiveBadInput(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	l := listenTCP(t)
	u, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	files := []*os.File{fileOf(t, l), fileOf(t, u)}
	for _, f := range files {
		t.Cleanup(func() { _ = f.Close() })
	}
	type input struct {
		name    string
		env     []string
		wantVar string
		want    func(r report) string
	}
	var inputs []input
	for _, tt := range badInputs {
		var env []string
		if tt.env.hasPID {
			if tt.env.pid == "4242" {
				env = append(env, envSelfPID+"=1")
			} else {
				env = append(env, EnvPID+"="+tt.env.pid)
			}
		}
		if tt.env.hasFDs {
			env = append(env, EnvFDs+"="+tt.env.fds)
		}
		if tt.env.hasNames {
			env = append(env, EnvNames+"="+tt.env.names)
		}
		inputs = append(inputs, input{tt.name, env, tt.wantVar, func(r report) string {
			w := strings.ReplaceAll(tt.want, "(this is 4242)", fmt.Sprintf("(this is %d)", r.PID))
			if tt.env.pid == "4242" {
				w = strings.ReplaceAll(w, "LISTEN_PID=4242 ", fmt.Sprintf("LISTEN_PID=%d ", r.PID))
			}
			return w
		}})
	}
	limit, ok := nrOpen()
	if !ok {
		t.Fatal("fs.nr_open unreadable")
	}
	past := strconv.Itoa(limit - FirstFD + 1)
	inputs = append(inputs,
		input{
			"LISTEN_PID of the parent",
			[]string{EnvPID + "=" + strconv.Itoa(os.Getpid()), EnvFDs + "=2"},
			"",
			func(r report) string {
				return fmt.Sprintf("activation: not socket-activated: LISTEN_PID=%d is another process (this is %d)", os.Getpid(), r.PID)
			},
		},
		input{
			"fds not open",
			[]string{envSelfPID + "=1", EnvFDs + "=60"},
			EnvFDs,
			func(r report) string {
				return firstBad("60", r)
			},
		},
		input{
			// fds 3 and 4 are passed; the count claims the next one,
			// the Go runtime's own cgroup file (Go 1.25+).
			"LISTEN_FDS counts the runtime's files",
			[]string{envSelfPID + "=1", EnvFDs + "=3"},
			EnvFDs,
			func(r report) string {
				if runtimeFD(r) != 5 {
					t.Skipf("the Go runtime holds no cgroup file at fd 5 here (fds before Receive: %v)", r.Before)
				}
				return `activation: LISTEN_FDS="3": fd 5 was not passed to this process: it is a close-on-exec cgroup file, opened after exec (by the Go runtime)`
			},
		},
		input{
			"past the fd table",
			[]string{envSelfPID + "=1", EnvFDs + "=" + past},
			EnvFDs,
			func(report) string {
				return fmt.Sprintf(`activation: LISTEN_FDS="%s": fd %d is past the end of the fd table (fs.nr_open=%d)`, past, limit, limit)
			},
		},
		input{
			"just inside the fd table",
			[]string{envSelfPID + "=1", EnvFDs + "=" + strconv.Itoa(limit-FirstFD)},
			EnvFDs,
			func(r report) string {
				return firstBad(strconv.Itoa(limit-FirstFD), r)
			},
		},
	)
	for _, in := range inputs {
		t.Run(in.name, func(t *testing.T) {
			r := runHelper(t, "receive", files, in.env)
			t.Logf("%q -> %s", in.env, r.Err)
			if want := in.want(r); r.Err != want {
				t.Errorf("error\n got %s\nwant %s", r.Err, want)
			}
			if in.wantVar == "" && !r.NotActivated || in.wantVar != "" && r.NotActivated {
				t.Errorf("not activated = %v, want %v", r.NotActivated, in.wantVar == "")
			}
			if r.EnvVar != in.wantVar {
				t.Errorf("EnvError.Var = %q, want %q", r.EnvVar, in.wantVar)
			}
			if len(r.EnvLeft) > 0 {
				t.Errorf("variables left set: %q", r.EnvLeft)
			}
			if len(r.Files) > 0 {
				t.Errorf("error with files: %v", r.Files)
			}
			if closed := changed(r.Before, r.After); len(closed) > 0 {
				t.Errorf("Receive closed fds %v on error", closed)
			}
			if closed := changed(map[int]string{3: r.Before[3], 4: r.Before[4]}, r.Closed); len(closed) > 0 {
				t.Errorf("inherited fds %v closed after an error (the count is not to be trusted)", closed)
			}
		})
	}
}

// firstBad is the error for a LISTEN_FDS (value) that claims more fds
// than the two passed: the first fd that is either not open or one of the
// runtime's own.
func firstBad(value string, r report) string {
	gap := firstGap(r.OpenBefore)
	if fd := runtimeFD(r); fd > 0 && fd < gap {
		return fmt.Sprintf(`activation: LISTEN_FDS="%s": fd %d was not passed to this process: it is a close-on-exec cgroup file, opened after exec (by the Go runtime)`, value, fd)
	}
	return fmt.Sprintf(`activation: LISTEN_FDS="%s": fd %d is not open: bad file descriptor`, value, gap)
}

// runtimeFD returns the lowest close-on-exec fd that is a cgroup file
// (the Go runtime's), 0 when none.
func runtimeFD(r report) int {
	for _, fd := range r.CloexecBefore {
		if strings.HasPrefix(r.Before[fd], "/sys/fs/cgroup/") {
			return fd
		}
	}
	return 0
}

// firstGap returns the lowest fd from 3 up that is not in open.
func firstGap(open []int) int {
	fd := FirstFD
	for slices.Contains(open, fd) {
		fd++
	}
	return fd
}

func TestReceiveDedup(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	admin, http, web := listenTCP(t), listenTCP(t), listenTCP(t)
	a, h, w := fileOf(t, admin), fileOf(t, http), fileOf(t, web)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	e1, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	e2, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	ev1, ev2 := os.NewFile(uintptr(e1), "eventfd1"), os.NewFile(uintptr(e2), "eventfd2")
	for _, f := range []*os.File{a, h, w, pr, pw, ev1, ev2} {
		t.Cleanup(func() { _ = f.Close() })
	}
	// Socket-unit fds, then fd-store copies of both (the order systemd 252
	// was seen to use); a socket and its copy stored without FDNAME=; a
	// pipe's two ends and two eventfds, which share inodes but are
	// distinct.
	files := []*os.File{a, h, h, a, w, w, pr, pw, ev1, ev2}
	names := []string{"admin", "http", "http", "admin", "web", "stored", "pipe", "pipe", "ev", "ev"}
	r := runHelper(t, "receive", files, activated(names...),
		"listener:admin", "listener:http", "listener:stored", "take:pipe", "take:ev")
	if r.Err != "" {
		t.Fatalf("Receive: %s", r.Err)
	}
	var got []string
	for _, f := range r.Files {
		got = append(got, strings.TrimSpace(fmt.Sprintf("%d %s %s %s", f.FD, f.Name, f.Kind, strings.Join(f.Aliases, ","))))
	}
	want := []string{"3 admin tcp", "4 http tcp", "7 web tcp stored", "9 pipe fifo", "10 pipe fifo", "11 ev other", "12 ev other"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Files (-want +got):\n%s", diff)
	}
	if dups := intersect(changed(r.Before, r.After), []int{5, 6, 8}); len(dups) != 3 {
		t.Errorf("of the duplicates 5, 6, 8 only %v closed", dups)
	}
	if other := without(changed(r.Before, r.After), []int{5, 6, 8}); len(other) > 0 {
		t.Errorf("fds %v closed", other)
	}
	wantLookups := []string{
		"listener:admin -> *net.TCPListener tcp " + admin.Addr().String(),
		"listener:http -> *net.TCPListener tcp " + http.Addr().String(),
		"listener:stored -> *net.TCPListener tcp " + web.Addr().String(), // the alias
		`take:pipe -> fd 9 "pipe" fifo; fd 10 "pipe" fifo`,
		`take:ev -> fd 11 "ev" other; fd 12 "ev" other`,
	}
	if diff := cmp.Diff(wantLookups, r.Lookups); diff != "" {
		t.Errorf("lookups (-want +got):\n%s", diff)
	}
	if left := stillOpen(r.Before, r.Closed, fdRange(FirstFD, len(files))); len(left) > 0 {
		t.Errorf("inherited fds %v still open after the lookups and Close", left)
	}
}

package activation

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/batonhq/baton/internal/testproc"
)

// TestSameAsGoSystemd runs this package's Receive and go-systemd's
// activation package side by side on the same fds and variables. Where both
// accept an input they must give the same fds and names, up to the
// differences go-systemd is known for (see doc.go): it names an fd without
// a name "LISTEN_FD_<fd>" and does not drop fd-store duplicates. Inputs
// only go-systemd accepts are checked to stay that way, as documented.
func TestSameAsGoSystemd(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	fs := fixtures(t, t.TempDir())
	all := filesOf(fs)
	names := namesOf(fs)
	tcp, udp := fs[0].file, fs[2].file

	self := envSelfPID + "=1"
	tests := []struct {
		name  string
		files []*os.File
		env   []string
		// oursRejects: this package refuses the input, go-systemd takes it.
		oursRejects bool
		// theirsNone: go-systemd says not activated, this package refuses.
		theirsNone bool
	}{
		{name: "every kind, named", files: all, env: activated(names...)},
		{name: "names not set", files: all, env: []string{self, EnvFDs + "=" + strconv.Itoa(len(all))}},
		{name: "empty names", files: []*os.File{tcp, udp}, env: activated("", "")},
		{name: "duplicate names", files: []*os.File{tcp, udp, tcp}, env: activated("a", "a", "b")},
		{name: "fd-store copies", files: []*os.File{tcp, udp, udp, tcp}, env: activated("admin", "http", "http", "admin")},
		{name: "fewer fds than passed", files: all, env: activated("tcp", "conn")},
		{name: "special names", files: []*os.File{tcp, udp}, env: activated(NameConnection, NameStored)},
		{name: "LISTEN_FDNAMES empty", files: []*os.File{tcp}, env: []string{self, EnvFDs + "=1", EnvNames + "="}},
		{name: "leading zero", files: []*os.File{tcp}, env: []string{self, EnvFDs + "=01", EnvNames + "=x"}, oursRejects: true},
		{name: "too few names", files: []*os.File{tcp, udp}, env: []string{self, EnvFDs + "=2", EnvNames + "=x"}, oursRejects: true},
		{name: "too many names", files: []*os.File{tcp}, env: []string{self, EnvFDs + "=1", EnvNames + "=x:y"}, oursRejects: true},
		{name: "LISTEN_FDS with plus sign", files: []*os.File{tcp}, env: []string{self, EnvFDs + "=+1", EnvNames + "=x"}, oursRejects: true},
		{name: "name with control character", files: []*os.File{tcp}, env: []string{self, EnvFDs + "=1", EnvNames + "=a\tb"}, oursRejects: true},
		{name: "LISTEN_PID unparsable", files: []*os.File{tcp}, env: []string{EnvPID + "=abc", EnvFDs + "=1"}, theirsNone: true},
		{name: "LISTEN_PID empty", files: []*os.File{tcp}, env: []string{EnvPID + "=", EnvFDs + "=1"}, theirsNone: true},
		{name: "LISTEN_FDS zero", files: []*os.File{tcp}, env: []string{self, EnvFDs + "=0"}, theirsNone: true},
		{name: "name over 255 bytes", files: []*os.File{tcp}, env: []string{self, EnvFDs + "=1", EnvNames + "=" + strings.Repeat("n", 256)}, oursRejects: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			theirs := runHelper(t, "go-systemd", tt.files, tt.env)
			ours := runHelper(t, "receive", tt.files, tt.env)
			if len(theirs.EnvLeft) > 0 || len(ours.EnvLeft) > 0 {
				t.Errorf("variables left set: go-systemd %q, Receive %q", theirs.EnvLeft, ours.EnvLeft)
			}
			if tt.theirsNone {
				if len(theirs.Files) > 0 || ours.Err == "" || ours.NotActivated {
					t.Errorf("go-systemd: %d files, want none; Receive: %q, want an error", len(theirs.Files), ours.Err)
				}
				t.Logf("go-systemd: not activated; Receive: %s", ours.Err)
				return
			}
			if len(theirs.Files) == 0 {
				t.Fatalf("go-systemd refused the input")
			}
			if tt.oursRejects {
				if ours.Err == "" {
					t.Fatalf("Receive accepted an input it should refuse: %v", ours.Files)
				}
				t.Logf("go-systemd accepts, Receive says: %s", ours.Err)
				return
			}
			if ours.Err != "" {
				t.Fatalf("Receive: %s", ours.Err)
			}
			if diff := cmp.Diff(goSystemdView(theirs.Files), fdNames(ours.Files)); diff != "" {
				t.Errorf("go-systemd (-) and Receive (+) differ:\n%s", diff)
			}
		})
	}

	// ListenersWithNames against Listeners, name by name: go-systemd also
	// turns sockets that do not listen into listeners.
	t.Run("listeners", func(t *testing.T) {
		theirs := runHelper(t, "go-systemd", all, activated(names...), "listeners")
		var args []string
		for _, n := range names {
			args = append(args, "listeners:"+n)
		}
		ours := runHelper(t, "receive", all, activated(names...), args...)
		got := map[string][]string{}
		for _, line := range ours.Lookups {
			arg, res, _ := strings.Cut(line, " -> ")
			if !strings.HasPrefix(res, "error:") {
				got[strings.TrimPrefix(arg, "listeners:")] = strings.Split(res, "; ")
			}
		}
		extra := map[string][]string{}
		for name, ls := range theirs.Listeners {
			for _, l := range ls {
				if !slices.Contains(got[name], l) {
					extra[name] = append(extra[name], l)
				}
			}
		}
		for name, ls := range got {
			for _, l := range ls {
				if !slices.Contains(theirs.Listeners[name], l) {
					t.Errorf("Receive's listener %q %s not among go-systemd's", name, l)
				}
			}
		}
		// The sockets go-systemd wrongly gives as listeners: a connected
		// TCP socket, a unix datagram socket, a connected unix socket.
		wantExtra := map[string][]string{
			"conn":     {"*net.TCPListener " + fs[1].addr},
			"unixgram": {"*net.UnixListener " + fs[4].addr},
			"pair":     {"*net.UnixListener " + fs[len(fs)-1].addr},
		}
		if diff := cmp.Diff(wantExtra, extra); diff != "" {
			t.Errorf("go-systemd's extra listeners (-want +got):\n%s", diff)
		}
	})
}

// goSystemdView turns go-systemd's files into what Receive would report:
// "LISTEN_FD_<fd>" is an fd without a name, and a later fd for an inode
// already seen is a duplicate.
func goSystemdView(files []reportFile) []string {
	var out []string
	seen := map[uint64]bool{}
	for _, f := range files {
		if seen[f.Ino] {
			continue
		}
		seen[f.Ino] = true
		name := f.Name
		if name == "LISTEN_FD_"+strconv.Itoa(f.FD) {
			name = "<no name>"
		}
		out = append(out, fmt.Sprintf("fd %d %q ino %d", f.FD, name, f.Ino))
	}
	return out
}

// fdNames is Receive's files in the same form; "unknown" (no
// LISTEN_FDNAMES) and "" (an empty field) are both "<no name>" to
// go-systemd.
func fdNames(files []reportFile) []string {
	var out []string
	for _, f := range files {
		name := f.Name
		if name == NameUnknown || name == "" {
			name = "<no name>"
		}
		out = append(out, fmt.Sprintf("fd %d %q ino %d", f.FD, name, f.Ino))
	}
	return out
}

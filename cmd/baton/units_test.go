package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/batonhq/baton/units"
)

// docs/units.md's example names units.DefaultBaton, which need not be
// installed where the tests run: their stderr is the warning about it, or
// nothing (batonWarning; TestUnitsBatonWarning checks it).

// exampleArgs is docs/units.md's example.
var exampleArgs = []string{
	"units", "--name", "myapp", "--exec", "/usr/local/bin/myapp -config /etc/myapp.toml",
	"--listen", "http=tcp://:8080", "--listen", "admin=unix:/run/myapp/admin.sock",
	"--drain", "1m", "--watchdog", "30s",
}

func TestUnitsStdout(t *testing.T) {
	r := baton(t, exampleArgs...)
	if r.code != 0 || withoutNotes(r.stderr) != batonWarning(units.DefaultBaton) {
		t.Fatalf("exit status %d, stderr:\n%s", r.code, r.stderr)
	}
	path := filepath.Join("testdata", "units-example.golden")
	if *update {
		if err := os.WriteFile(path, []byte(r.stdout), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./cmd/baton -update creates it)", err)
	}
	if diff := cmp.Diff(string(want), r.stdout); diff != "" {
		t.Errorf("baton units output differs from %s (-want +got):\n%s", path, diff)
	}
	// docs/units.md shows the same output.
	doc, err := os.ReadFile("../../docs/units.md")
	if err != nil {
		t.Fatal(err)
	}
	_, shown, _ := strings.Cut(string(doc), "```ini\n")
	shown, _, _ = strings.Cut(shown, "```")
	if diff := cmp.Diff(r.stdout, shown); diff != "" {
		t.Errorf("docs/units.md's first ini block is not baton units' output (-output +docs):\n%s", diff)
	}
}

func TestUnitsOut(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "dir")
	r := baton(t, append(exampleArgs, "--out", dir)...)
	if r.code != 0 || withoutNotes(r.stderr) != batonWarning(units.DefaultBaton) {
		t.Fatalf("exit status %d, stderr:\n%s", r.code, r.stderr)
	}
	names := []string{"myapp.service", "myapp-http.socket", "myapp-admin.socket"}
	var wantOut, fromFiles strings.Builder
	for i, n := range names {
		wantOut.WriteString(filepath.Join(dir, n) + "\n")
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			fromFiles.WriteString("\n")
		}
		fromFiles.WriteString("# " + n + "\n" + string(b))
	}
	if r.stdout != wantOut.String() {
		t.Errorf("stdout %q, want the paths %q", r.stdout, wantOut.String())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(names) {
		t.Errorf("%d entries in %s, want %d", len(entries), dir, len(names))
	}
	printed := baton(t, exampleArgs...)
	if diff := cmp.Diff(printed.stdout, fromFiles.String()); diff != "" {
		t.Errorf("files differ from the printed units (-printed +files):\n%s", diff)
	}
}

// TestUnitsBadSpec runs each bad spec with --out: exit status 2, a message
// naming the flag and the value, and nothing written (not even the
// directory).
func TestUnitsBadSpec(t *testing.T) {
	base := func(extra ...string) []string {
		args := map[string]string{"--name": "app", "--exec": "/bin/app -x", "--listen": "http=tcp://127.0.0.1:8080"}
		var out []string
		for i := 0; i+1 < len(extra); i += 2 {
			args[extra[i]] = extra[i+1]
		}
		for _, k := range []string{"--name", "--exec", "--listen"} {
			if v := args[k]; v != "" {
				out = append(out, k, v)
			}
			delete(args, k)
		}
		for k, v := range args {
			out = append(out, k, v)
		}
		return out
	}
	tests := []struct {
		name string
		args []string
		want []string // each in stderr
	}{
		{"missing name", base("--name", ""), []string{"--name is required"}},
		{"missing exec", base("--exec", ""), []string{"--exec is required"}},
		{"name systemd cannot use", base("--name", "my/app"), []string{"--name", `"my/app"`}},
		{"name with space", base("--name", "my app"), []string{"--name", `"my app"`}},
		{"relative exec", base("--exec", "bin/app -x"), []string{"--exec", `"bin/app"`, "not absolute"}},
		{"unterminated quote", base("--exec", `/bin/app "x`), []string{"--exec", "unterminated"}},
		{"duplicate socket", append(base(), "--listen", "http=tcp://127.0.0.1:8081"), []string{`--listen "http=tcp://127.0.0.1:8081"`, "duplicate socket name"}},
		{"listen without name", base("--listen", "tcp://127.0.0.1:8080"), []string{`--listen "tcp://127.0.0.1:8080"`, "NAME=URL"}},
		{"port out of range", base("--listen", "http=tcp://127.0.0.1:70000"), []string{`"tcp://127.0.0.1:70000"`, "out of range"}},
		{"port zero", base("--listen", "http=udp://127.0.0.1:0"), []string{`"udp://127.0.0.1:0"`, "out of range"}},
		{"relative unix path", base("--listen", "admin=unix:run/admin.sock"), []string{`"unix:run/admin.sock"`, "not absolute"}},
		{"bad socket name", base("--listen", "a:b=tcp://127.0.0.1:8080"), []string{`"a:b"`}},
		{"reserved socket name", base("--listen", "stored=tcp://127.0.0.1:8080"), []string{`"stored"`, "reserved"}},
		{"relative baton", base("--baton", "baton"), []string{"--baton", `"baton"`}},
		{"old systemd", base("--systemd-version", "219"), []string{"--systemd-version", `"219"`}},
		{"fdstore with sockets", base("--fdstore", "4"), []string{"--fdstore", `"4"`}},
		{"allow-ip without network", base("--allow-ip", "10.0.0.0/8"), []string{"--allow-ip", `"10.0.0.0/8"`}},
		{"root user", base("--user", "root"), []string{"--user", `"root"`}},
		{"negative watchdog", base("--watchdog", "-1s"), []string{"--watchdog", `"-1s"`}},
		{"zero drain", base("--drain", "0"), []string{"--drain"}},
		{"negative stop delay", base("--stop-delay", "-1s"), []string{"--stop-delay", `"-1s"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out")
			r := baton(t, append(append([]string{"units"}, tt.args...), "--out", dir)...)
			if r.code != 2 {
				t.Errorf("exit status %d, want 2", r.code)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr does not contain %q:\n%s", w, r.stderr)
				}
			}
			if !strings.HasPrefix(r.stderr, "baton units: ") {
				t.Errorf("stderr does not start with \"baton units: \":\n%s", r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout not empty:\n%s", r.stdout)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("%s exists after a bad spec (%v)", dir, err)
			}
		})
	}
}

// TestUnitsStopDelay: --stop-delay lengthens TimeoutStopSec= by the
// delay and reaches nothing else.
func TestUnitsStopDelay(t *testing.T) {
	plain := baton(t, exampleArgs...)
	r := baton(t, append(exampleArgs, "--stop-delay", "10s")...)
	if r.code != 0 || withoutNotes(r.stderr) != batonWarning(units.DefaultBaton) {
		t.Fatalf("exit status %d, stderr:\n%s", r.code, r.stderr)
	}
	// The example drains for 1m: 60s + 10s + 5s.
	want := strings.Replace(plain.stdout, "TimeoutStopSec=65s", "TimeoutStopSec=75s", 1)
	if want == plain.stdout {
		t.Fatalf("no TimeoutStopSec=65s in\n%s", plain.stdout)
	}
	if diff := cmp.Diff(want, r.stdout); diff != "" {
		t.Errorf("--stop-delay 10s (-want +got):\n%s", diff)
	}
}

func TestSplitWords(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"/bin/app", []string{"/bin/app"}},
		{"  /bin/app  -x\t1 ", []string{"/bin/app", "-x", "1"}},
		{`/bin/app 'a b' "c d" e\ f`, []string{"/bin/app", "a b", "c d", "e f"}},
		{`/bin/app "say \"hi\"" 'it''s' "\n"`, []string{"/bin/app", `say "hi"`, "its", `\n`}},
		{`/bin/app "" ''`, []string{"/bin/app", "", ""}},
		{`/bin/app a"b"c`, []string{"/bin/app", "abc"}},
		{"", nil},
	}
	for _, tt := range tests {
		got, err := splitWords(tt.in)
		if err != nil {
			t.Errorf("splitWords(%q): %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("splitWords(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
	for _, bad := range []string{`a "b`, `a 'b`, `a\`} {
		if _, err := splitWords(bad); err == nil {
			t.Errorf("splitWords(%q): no error", bad)
		}
	}
}

// TestUnitsBatonWarning: when the baton that ExecReload= and ExecStop= run
// is not an executable file here, baton units warns on stderr with the fix
// and writes the units all the same; an executable one draws no warning.
func TestUnitsBatonWarning(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("file modes say nothing of executability on windows")
	}
	dir := t.TempDir()
	exe := filepath.Join(dir, "baton")
	plain := filepath.Join(dir, "plain")
	private := filepath.Join(dir, "private")
	for name, mode := range map[string]os.FileMode{exe: 0o755, plain: 0o644, private: 0o700} {
		if err := os.WriteFile(name, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(name, mode); err != nil { // whatever the umask
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, baton, why string // why: "" for no warning
	}{
		{"missing", filepath.Join(dir, "nope"), "it does not exist"},
		{"not executable", plain, "it is not executable (mode -rw-r--r--)"},
		{"owner only", private, "only its owner or group may execute it (mode -rwx------), not the service's user"},
		{"directory", dir, "it is a directory"},
		{"executable", exe, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "units")
			r := baton(t, "units", "--name", "app", "--exec", "/bin/app", "--baton", tt.baton, "--out", out)
			if r.code != 0 {
				t.Fatalf("exit status %d, want 0; stderr:\n%s", r.code, r.stderr)
			}
			b, err := os.ReadFile(filepath.Join(out, "app.service"))
			if err != nil {
				t.Fatalf("units not written: %v", err)
			}
			for _, line := range []string{"ExecReload=" + tt.baton + " reload --pid $MAINPID", "ExecStop=" + tt.baton + " stop --pid $MAINPID"} {
				if !strings.Contains(string(b), line) {
					t.Errorf("app.service lacks %q:\n%s", line, b)
				}
			}
			if tt.why == "" {
				if withoutNotes(r.stderr) != "" {
					t.Errorf("stderr for an executable baton:\n%s", r.stderr)
				}
				return
			}
			for _, want := range []string{
				"baton units: warning: ExecReload= and ExecStop= run " + tt.baton + ", which is not executable here: " + tt.why + ";",
				"systemctl reload and stop would fail",
				"go install github.com/batonhq/baton/cmd/baton@latest",
				"or pass --baton PATH.",
			} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
				}
			}
		})
	}
}

// withoutNotes is baton units' stderr without its three sandbox lines.
func withoutNotes(stderr string) string {
	var b strings.Builder
	for line := range strings.Lines(stderr) {
		if !strings.HasPrefix(line, "baton units: sandbox: ") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// TestUnitsSandboxNotes: baton units says on stderr, in three lines, what
// the sandbox denies and which flags relax it, and the lines follow the
// flags given.
func TestUnitsSandboxNotes(t *testing.T) {
	base := []string{"units", "--name", "app", "--exec", "/usr/local/bin/app", "--listen", "http=tcp://127.0.0.1:8080"}
	tests := []struct {
		name string
		args []string
		want []string // the network, files and user lines contain these
	}{
		{"default", nil, []string{"not even to localhost (PrivateNetwork=yes", "relax: --state-dir, --writable PATH", "relax: --credential ID:PATH, --user USER"}},
		{
			"relaxed",
			[]string{"--allow-network", "--allow-ip", "localhost", "--writable", "/var/log/app", "--state-dir", "--user", "app"},
			[]string{"to localhost only (IPAddressAllow=)", "read-only but /var/lib/app, /var/log/app", "runs as app"},
		},
		{"credential", []string{"--credential", "config:/etc/app.toml"}, []string{"PrivateNetwork=yes", "ProtectSystem=strict", "$CREDENTIALS_DIRECTORY"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := baton(t, append(slices.Clone(base), tt.args...)...)
			if r.code != 0 {
				t.Fatalf("exit status %d, stderr:\n%s", r.code, r.stderr)
			}
			var notes []string
			for line := range strings.Lines(r.stderr) {
				if strings.HasPrefix(line, "baton units: sandbox: ") {
					notes = append(notes, line)
				}
			}
			if len(notes) != 3 {
				t.Fatalf("%d sandbox lines, want 3:\n%s", len(notes), r.stderr)
			}
			for i, w := range tt.want {
				if !strings.Contains(notes[i], w) {
					t.Errorf("line %d lacks %q: %s", i+1, w, notes[i])
				}
			}
		})
	}
}

// TestUnitsRun: baton units --run -- CMD writes units whose ExecStart= is
// baton run with the units' own deadlines, and refuses --exec with it.
func TestUnitsRun(t *testing.T) {
	r := baton(t, "units", "--name", "py", "--run", "--listen", "http=tcp://127.0.0.1:8080", "--ready-timeout", "20s",
		"--", "/usr/bin/python3", "/srv/app.py", "--port", "8080")
	if r.code != 0 {
		t.Fatalf("exit status %d, stderr:\n%s", r.code, r.stderr)
	}
	for _, line := range []string{
		"ExecStart=/usr/local/bin/baton run --ready-timeout 20s --drain 30s -- /usr/bin/python3 /srv/app.py --port 8080\n",
		"ExecReload=/usr/local/bin/baton reload --pid $MAINPID\n",
		"KillMode=mixed\n",
		"Type=notify\n",
		"TimeoutStartSec=25s\n",
	} {
		if !strings.Contains(r.stdout, line) {
			t.Errorf("units lack %q:\n%s", line, r.stdout)
		}
	}
	// --ready exec: as baton run's, 2s unless --ready-timeout is given.
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--ready", "exec"}, "ExecStart=/usr/local/bin/baton run --ready exec --ready-timeout 2s --drain 30s -- /usr/bin/node /srv/app.js\n"},
		{[]string{"--ready", "exec", "--ready-timeout", "5s"}, "ExecStart=/usr/local/bin/baton run --ready exec --ready-timeout 5s --drain 30s -- /usr/bin/node /srv/app.js\n"},
	} {
		args := append([]string{"units", "--name", "node", "--run", "--listen", "http=tcp://127.0.0.1:8080"}, tt.args...)
		r := baton(t, append(args, "--", "/usr/bin/node", "/srv/app.js")...)
		if r.code != 0 || !strings.Contains(r.stdout, tt.want) {
			t.Errorf("%q: exit status %d, stderr %q; units lack %q:\n%s", tt.args, r.code, r.stderr, tt.want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "ExecStop=") {
		t.Errorf("baton run stays the main process: no ExecStop= wanted:\n%s", r.stdout)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"units", "--name", "py", "--run", "--exec", "/bin/x", "--", "/bin/y"}, "--exec with --run"},
		{[]string{"units", "--name", "py", "--run"}, "--run: no command"},
		{[]string{"units", "--name", "py", "--run", "--", "python3"}, `--run CMD: Exec[0] "python3": program path is not absolute`},
		{[]string{"units", "--name", "py", "--exec", "/bin/x", "--ready", "exec"}, "--ready exec needs --run"},
		{[]string{"units", "--name", "py", "--run", "--ready", "maybe", "--", "/bin/y"}, `--ready="maybe"`},
	} {
		if r := baton(t, tt.args...); r.code != exitUsage || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%q: exit status %d, stderr %q; want %d and %q", tt.args, r.code, r.stderr, exitUsage, tt.want)
		}
	}
}

// TestListenMessages: one --listen mistake, one message, in baton run and
// baton units.
func TestListenMessages(t *testing.T) {
	for _, v := range []string{"http=tcp://127.0.0.1:0x", "ht:p=tcp://127.0.0.1:80", "a=http://x", "http"} {
		run := baton(t, "run", "--listen", v, "--", "true")
		un := baton(t, "units", "--name", "a", "--exec", "/bin/a", "--listen", v)
		first := func(s, prefix string) string {
			line, _, _ := strings.Cut(s, "\n")
			line, _, _ = strings.Cut(strings.TrimPrefix(line, prefix), " (")
			return line
		}
		want := fmt.Sprintf("--listen %q: ", v)
		r, u := first(run.stderr, "baton run: "), first(un.stderr, "baton units: ")
		if run.code != exitUsage || un.code != exitUsage || r != u || !strings.HasPrefix(r, want) {
			t.Errorf("--listen %q: run (status %d) %q, units (status %d) %q; want status 2 and the same message starting %q", v, run.code, r, un.code, u, want)
		}
	}
}

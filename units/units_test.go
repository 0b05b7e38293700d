package units

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testproc"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the generated units")

// specs is the table of the golden, verify and security tests.
var specs = []struct {
	name string
	spec Spec
	// maxExposure is the highest systemd-analyze security score the
	// service may have: 1.0 unless a switch relaxes the sandbox.
	maxExposure float64
}{
	{
		name: "http",
		spec: Spec{
			Name:    "myapp",
			Exec:    []string{"/usr/local/bin/myapp", "-listen", "127.0.0.1:8080"},
			Sockets: []Socket{{Name: "http", URL: "tcp://127.0.0.1:8080"}},
		},
		maxExposure: 1.0,
	},
	{
		name: "multi",
		spec: Spec{
			Name:         "shop",
			Description:  "Shop front end (100% uptime)",
			Exec:         []string{"/opt/shop/bin/shop", "serve"},
			Sockets:      []Socket{{"http", "tcp://:8080"}, {"admin", "unix:/run/shop/admin.sock"}, {"metrics", "tcp://[::1]:9100"}, {"dns", "udp://127.0.0.1:5353"}},
			DrainTimeout: 90 * time.Second,
			ReadyTimeout: 2500 * time.Millisecond,
			Watchdog:     20 * time.Second,
		},
		maxExposure: 1.0,
	},
	{
		name: "families",
		spec: Spec{
			Name:    "fam",
			Exec:    []string{"/usr/bin/fam"},
			Sockets: []Socket{{"v4", "tcp4://:80"}, {"v6", "tcp6://:80"}, {"u4", "udp4://:53"}, {"u6", "udp6://[::1]:53"}, {"abstract", "unix:@fam-ctl"}},
		},
		maxExposure: 1.0,
	},
	{
		name: "notify-reload",
		spec: Spec{
			Name:           "myapp",
			Exec:           []string{"/usr/local/bin/myapp"},
			Sockets:        []Socket{{"http", "tcp://127.0.0.1:8080"}},
			SystemdVersion: 254,
		},
		maxExposure: 1.0,
	},
	{
		name: "fdstore",
		spec: Spec{
			Name:       "selfbind",
			Exec:       []string{"/usr/local/bin/selfbind", "-listen", "127.0.0.1:9000"},
			FDStoreMax: 8,
			Baton:      "/usr/bin/baton",
		},
		maxExposure: 1.0,
	},
	{
		name: "relaxed",
		spec: Spec{
			Name:           "api",
			Exec:           []string{"/usr/local/bin/api"},
			Sockets:        []Socket{{"http", "tcp://:443"}},
			AllowNetwork:   true,
			AllowIP:        []string{"10.0.0.0/8", "192.168.1.7", "localhost"},
			StateDirectory: true,
			User:           "shopper",
		},
		maxExposure: 1.0,
	},
	{
		name: "network",
		spec: Spec{
			Name:         "crawler",
			Exec:         []string{"/usr/local/bin/crawler"},
			Sockets:      []Socket{{"http", "tcp://127.0.0.1:8080"}},
			AllowNetwork: true,
		},
		// Outbound connections to any address: PrivateNetwork= and the
		// IP filter go, and systemd-analyze counts that as 1.1.
		maxExposure: 1.2,
	},
	{
		name: "run",
		spec: Spec{
			Name:        "pyapp",
			Exec:        []string{"/usr/bin/python3", "/opt/pyapp/server.py", "--port", "8080"},
			Sockets:     []Socket{{"http", "tcp://127.0.0.1:8080"}},
			Run:         true,
			ReadyExec:   true,
			StopDelay:   2 * time.Second,
			WatchWindow: 5 * time.Second,
			// Under baton run the units stay Type=notify: baton speaks
			// to the manager, with RELOADING=1 around its upgrades.
			SystemdVersion: 254,
		},
		maxExposure: 1.0,
	},
	{
		name: "files",
		spec: Spec{
			Name:        "files",
			Exec:        []string{"/usr/local/bin/files"},
			Sockets:     []Socket{{"http", "tcp://127.0.0.1:8080"}},
			Writable:    []string{"/var/log/files", "/srv/my files"},
			Credentials: []string{"config:/etc/files/config.toml", "tls-key:/etc/ssl/private/files.key"},
		},
		maxExposure: 1.0,
	},
	{
		name: "quoting",
		spec: Spec{
			Name:    "q",
			Exec:    []string{"/usr/local/bin/q", "-msg", "hello world", "-fmt", "%d$HOME", `say "hi"`, `back\slash`, ";", ""},
			Sockets: []Socket{{"http", "tcp://127.0.0.1:8080"}},
		},
		maxExposure: 1.0,
	},
}

// render is the text of a set of units, each after a "# NAME" line: the
// format of `baton units` without --out.
func render(files []File) []byte {
	var b bytes.Buffer
	for i, f := range files {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString("# " + f.Name + "\n")
		b.Write(f.Bytes())
	}
	return b.Bytes()
}

func TestGolden(t *testing.T) {
	for _, tt := range specs {
		t.Run(tt.name, func(t *testing.T) {
			files, err := Generate(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			got := render(files)
			path := filepath.Join("testdata", tt.name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./units -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s differs (-want +got; go test ./units -update rewrites it):\n%s", path, diff)
			}
		})
	}
}

func TestSpecErrors(t *testing.T) {
	ok := func(mod func(*Spec)) Spec {
		s := Spec{Name: "app", Exec: []string{"/bin/app"}, Sockets: []Socket{{"http", "tcp://127.0.0.1:80"}}}
		mod(&s)
		return s
	}
	tests := []struct {
		name  string
		spec  Spec
		field string
		value string
	}{
		{"empty name", ok(func(s *Spec) { s.Name = "" }), "Name", `""`},
		{"name with slash", ok(func(s *Spec) { s.Name = "my/app" }), "Name", `"my/app"`},
		{"name with space", ok(func(s *Spec) { s.Name = "my app" }), "Name", `"my app"`},
		{"name with at", ok(func(s *Spec) { s.Name = "app@1" }), "Name", `"app@1"`},
		{"name with suffix", ok(func(s *Spec) { s.Name = "app.service" }), "Name", `"app.service"`},
		{"name too long", ok(func(s *Spec) { s.Name = strings.Repeat("a", 250) }), "Name", strings.Repeat("a", 250)},
		{"no exec", ok(func(s *Spec) { s.Exec = nil }), "Exec", `""`},
		{"relative exec", ok(func(s *Spec) { s.Exec = []string{"bin/app", "-x"} }), "Exec[0]", `"bin/app"`},
		{"newline in arg", ok(func(s *Spec) { s.Exec = []string{"/bin/app", "a\nb"} }), "Exec[1]", `"a\nb"`},
		{"newline in description", ok(func(s *Spec) { s.Description = "x\ny" }), "Description", `"x\ny"`},
		{"duplicate socket", ok(func(s *Spec) { s.Sockets = append(s.Sockets, Socket{"http", "tcp://127.0.0.1:81"}) }), "Sockets[1].Name", `"http"`},
		{"socket name with colon", ok(func(s *Spec) { s.Sockets[0].Name = "a:b" }), "Sockets[0].Name", `"a:b"`},
		{"empty socket name", ok(func(s *Spec) { s.Sockets[0].Name = "" }), "Sockets[0].Name", `""`},
		{"reserved socket name", ok(func(s *Spec) { s.Sockets[0].Name = "connection" }), "Sockets[0].Name", `"connection"`},
		{"port zero", ok(func(s *Spec) { s.Sockets[0].URL = "tcp://127.0.0.1:0" }), "Sockets[0].URL", `"tcp://127.0.0.1:0"`},
		{"port too big", ok(func(s *Spec) { s.Sockets[0].URL = "udp://127.0.0.1:65536" }), "Sockets[0].URL", `"udp://127.0.0.1:65536"`},
		{"relative unix path", ok(func(s *Spec) { s.Sockets[0].URL = "unix:run/app.sock" }), "Sockets[0].URL", `"unix:run/app.sock"`},
		{"unknown scheme", ok(func(s *Spec) { s.Sockets[0].URL = "http://127.0.0.1:80" }), "Sockets[0].URL", `"http://127.0.0.1:80"`},
		{"host name", ok(func(s *Spec) { s.Sockets[0].URL = "tcp://localhost:80" }), "Sockets[0].URL", `"tcp://localhost:80"`},
		{"relative baton", ok(func(s *Spec) { s.Baton = "baton" }), "Baton", `"baton"`},
		{"negative drain", ok(func(s *Spec) { s.DrainTimeout = -time.Second }), "DrainTimeout", `"-1s"`},
		{"negative stop delay", ok(func(s *Spec) { s.StopDelay = -time.Second }), "StopDelay", `"-1s"`},
		{"tiny watchdog", ok(func(s *Spec) { s.Watchdog = time.Microsecond }), "Watchdog", `"1µs"`},
		{"old systemd", ok(func(s *Spec) { s.SystemdVersion = 219 }), "SystemdVersion", `"219"`},
		{"fdstore with sockets", ok(func(s *Spec) { s.FDStoreMax = 4 }), "FDStoreMax", `"4"`},
		{"negative fdstore", ok(func(s *Spec) { s.Sockets = nil; s.FDStoreMax = -1 }), "FDStoreMax", `"-1"`},
		{"ip without network", ok(func(s *Spec) { s.AllowIP = []string{"10.0.0.0/8"} }), "AllowIP", `"10.0.0.0/8"`},
		{"bad ip", ok(func(s *Spec) { s.AllowNetwork = true; s.AllowIP = []string{"10.0.0.0/33"} }), "AllowIP[0]", `"10.0.0.0/33"`},
		{"ready exec without run", ok(func(s *Spec) { s.ReadyExec = true }), "ReadyExec", "needs Run"},
		{"relative writable", ok(func(s *Spec) { s.Writable = []string{"/var/lib/x", "data"} }), "Writable[1]", `"data"`},
		{"credential without path", ok(func(s *Spec) { s.Credentials = []string{"config"} }), "Credentials[0]", "want ID:PATH"},
		{"credential id with slash", ok(func(s *Spec) { s.Credentials = []string{"a/b:/etc/x"} }), "Credentials[0]", "plain file name"},
		{"credential relative path", ok(func(s *Spec) { s.Credentials = []string{"config:etc/x"} }), "Credentials[0]", "not absolute"},
		{"root user", ok(func(s *Spec) { s.User = "root" }), "User", `"root"`},
		{"nobody", ok(func(s *Spec) { s.User = "nobody" }), "User", `"nobody"`},
		{"bad user", ok(func(s *Spec) { s.User = "-x" }), "User", `"-x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files, err := Generate(tt.spec)
			if err == nil {
				t.Fatalf("Generate: no error, %d files", len(files))
			}
			if files != nil {
				t.Errorf("Generate returned files with the error %v", err)
			}
			var serr *SpecError
			if !errors.As(err, &serr) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v (%T) is not a *SpecError matching ErrInvalid", err, err)
			}
			if serr.Field != tt.field {
				t.Errorf("Field = %q, want %q (error: %v)", serr.Field, tt.field, err)
			}
			if !strings.HasPrefix(err.Error(), tt.field+" ") || !strings.Contains(err.Error(), tt.value) {
				t.Errorf("error %q does not name field %s and value %s", err, tt.field, tt.value)
			}
		})
	}
}

// TestStopDelay: the service's stop delay comes before its drain, and
// TimeoutStopSec= covers both; nothing else changes.
func TestStopDelay(t *testing.T) {
	tests := []struct {
		delay, drain time.Duration
		want         string
	}{
		{0, 0, "35s"},
		{10 * time.Second, 0, "45s"},
		{1500 * time.Millisecond, time.Minute, "66500ms"},
	}
	base := specs[0].spec
	plain, err := Generate(base)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		spec := base
		spec.StopDelay, spec.DrainTimeout = tt.delay, tt.drain
		files, err := Generate(spec)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, o := range files[0].Options {
			if o.Name == "TimeoutStopSec" {
				got = append(got, o.Value)
			}
		}
		if len(got) != 1 || got[0] != tt.want {
			t.Errorf("StopDelay %s, DrainTimeout %s: TimeoutStopSec=%v, want %s", tt.delay, tt.drain, got, tt.want)
		}
		if tt.drain == 0 {
			want := strings.Replace(string(plain[0].Bytes()), "TimeoutStopSec=35s", "TimeoutStopSec="+tt.want, 1)
			if diff := cmp.Diff(want, string(files[0].Bytes())); diff != "" {
				t.Errorf("StopDelay %s changed more than TimeoutStopSec= (-want +got):\n%s", tt.delay, diff)
			}
		}
	}
}

func TestExecWord(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/bin/app", "/bin/app"},
		{"-flag=1", "-flag=1"},
		{"a b", `"a b"`},
		{"", `""`},
		{"100%", "100%%"},
		{"$HOME", "$$HOME"},
		{`a"b`, `"a\"b"`},
		{`a\b`, `"a\\b"`},
		{"it's", `"it's"`},
		{";", `\;`},
		{"a;b", "a;b"},
	}
	for _, tt := range tests {
		if got := execWord(tt.in); got != tt.want {
			t.Errorf("execWord(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{35 * time.Second, "35s"},
		{1500 * time.Millisecond, "1500ms"},
		{time.Millisecond + time.Nanosecond, "2ms"},
		{2 * time.Minute, "120s"},
	}
	for _, tt := range tests {
		if got := duration(tt.in); got != tt.want {
			t.Errorf("duration(%v) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestWrite(t *testing.T) {
	testproc.CheckFDs(t)
	dir := t.TempDir()
	files, err := Generate(specs[1].spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(dir, files); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"shop-admin.socket", "shop-dns.socket", "shop-http.socket", "shop-metrics.socket", "shop.service"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("files in dir (-want +got):\n%s", diff)
	}
	for _, f := range files {
		got, err := os.ReadFile(filepath.Join(dir, f.Name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, f.Bytes()) {
			t.Errorf("%s: content differs", f.Name)
		}
	}
}

func TestWriteAllOrNothing(t *testing.T) {
	testproc.CheckFDs(t)
	dir := t.TempDir()
	files, err := Generate(specs[0].spec)
	if err != nil {
		t.Fatal(err)
	}
	bad := append(files, File{Name: "../escape.service"})
	if err := Write(dir, bad); err == nil {
		t.Fatal("Write with a bad name: no error")
	}
	// A file whose name is taken by a directory cannot be renamed into
	// place; everything else must stay as it was.
	old := filepath.Join(dir, files[0].Name)
	if err := os.WriteFile(old, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, files[1].Name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Write(dir, files); err == nil {
		t.Fatal("Write over a directory: no error")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != files[0].Name && e.Name() != files[1].Name {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	if b, err := os.ReadFile(old); err != nil || string(b) != "old\n" {
		t.Errorf("%s after a failed Write: %q, %v; want the old content", old, b, err)
	}

	// Replacing existing files leaves nothing else behind.
	if err := os.Remove(filepath.Join(dir, files[1].Name)); err != nil {
		t.Fatal(err)
	}
	if err := Write(dir, files); err != nil {
		t.Fatal(err)
	}
	entries, err = os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(files) {
		t.Errorf("%d entries in dir after Write, want %d", len(entries), len(files))
	}
	if b, err := os.ReadFile(old); err != nil || !bytes.Equal(b, files[0].Bytes()) {
		t.Errorf("%s not replaced: %q, %v", old, b, err)
	}
}

// TestWatchWindow: with a watch window ExecReload= waits for its end and
// TimeoutStartSec= covers it; nothing else changes.
func TestWatchWindow(t *testing.T) {
	base := specs[0].spec
	plain, err := Generate(base)
	if err != nil {
		t.Fatal(err)
	}
	spec := base
	spec.WatchWindow = 30 * time.Second
	files, err := Generate(spec)
	if err != nil {
		t.Fatal(err)
	}
	want := string(plain[0].Bytes())
	want = strings.Replace(want, "TimeoutStartSec=15s", "TimeoutStartSec=45s", 1)
	want = strings.Replace(want, " reload --pid $MAINPID", " reload --wait-window --pid $MAINPID", 1)
	if diff := cmp.Diff(want, string(files[0].Bytes())); diff != "" {
		t.Errorf("WatchWindow 30s (-want +got):\n%s", diff)
	}
	spec.WatchWindow = -time.Second
	if _, err := Generate(spec); !errors.Is(err, ErrInvalid) {
		t.Errorf("negative WatchWindow: %v, want ErrInvalid", err)
	}
}

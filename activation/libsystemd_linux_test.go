package activation

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/batonhq/baton/internal/testproc"
)

// sdListenC calls libsystemd's sd_listen_fds_with_names(unset=1) and prints
// its result, one name per line in hex, and how many of the variables are
// left. The prototype is declared here, so only the library is needed,
// not its headers.
const sdListenC = `#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

int sd_listen_fds_with_names(int unset_environment, char ***names);

int main(void) {
	char pid[32];
	if (getenv("` + envSelfPID + `")) {
		snprintf(pid, sizeof pid, "%d", (int)getpid());
		setenv("LISTEN_PID", pid, 1);
	}
	if (getenv("` + envSelfPIDFDID + `")) {
		struct stat st;
		int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
		if (fd < 0 || fstat(fd, &st) < 0) {
			perror("pidfd_open");
			return 3;
		}
		close(fd);
		snprintf(pid, sizeof pid, "%llu", (unsigned long long)st.st_ino);
		setenv("LISTEN_PIDFDID", pid, 1);
	}
	char **names = NULL;
	int n = sd_listen_fds_with_names(1, &names);
	printf("%d\n", n);
	for (int i = 0; n > 0 && names && names[i]; i++) {
		printf("name ");
		for (const unsigned char *p = (const unsigned char *)names[i]; *p; p++)
			printf("%02x", *p);
		printf("\n");
	}
	printf("left %d\n", !!getenv("LISTEN_PID") + !!getenv("LISTEN_FDS") + !!getenv("LISTEN_FDNAMES") +
		!!getenv("LISTEN_PIDFDID"));
	return 0;
}
`

// buildSdListen compiles sdListenC against the system's libsystemd; with
// libDir, against the libsystemd.so.0 there (whose C library may be newer
// than the machine's: its symbols are resolved when the program runs).
func buildSdListen(t *testing.T, libDir string) string {
	t.Helper()
	gcc := testproc.LookPath(t, "gcc")
	dir := t.TempDir()
	src, bin := filepath.Join(dir, "sdlisten.c"), filepath.Join(dir, "sdlisten")
	if err := os.WriteFile(src, []byte(sdListenC), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"-o", bin, src}
	if libDir != "" {
		args = append(args, "-L"+libDir, "-Wl,--allow-shlib-undefined")
	}
	out, err := exec.Command(gcc, append(args, "-l:libsystemd.so.0")...).CombinedOutput()
	testproc.Require(t, err == nil, "needs libsystemd.so.0 to link against: "+strings.TrimSpace(string(out)))
	return bin
}

type sdResult struct {
	n     int // sd_listen_fds_with_names: count, 0, or -errno
	names []string
	left  int
}

// runSdListen runs argv (the program built by buildSdListen, possibly
// behind another release's dynamic loader) with files at fds 3.. and env.
func runSdListen(t *testing.T, argv []string, files []*os.File, env []string) sdResult {
	t.Helper()
	bin := argv[len(argv)-1]
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(withoutListenEnv(os.Environ()), env...)
	cmd.ExtraFiles = files
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	var r sdResult
	sc := bufio.NewScanner(bytes.NewReader(out))
	for i := 0; sc.Scan(); i++ {
		line := sc.Text()
		switch {
		case i == 0:
			if r.n, err = strconv.Atoi(line); err != nil {
				t.Fatalf("output %q", out)
			}
		case strings.HasPrefix(line, "name "):
			b, err := hex.DecodeString(strings.TrimPrefix(line, "name "))
			if err != nil {
				t.Fatalf("output %q", out)
			}
			r.names = append(r.names, string(b))
		case strings.HasPrefix(line, "left "):
			r.left, _ = strconv.Atoi(strings.TrimPrefix(line, "left "))
		}
	}
	return r
}

// sdInput is one environment given to libsystemd and to Receive.
type sdInput struct {
	name string
	env  []string
	// stricter: libsystemd accepts it, Receive refuses (documented).
	stricter bool
}

// sdInputs are the inputs both libsystemd releases are compared on: a few
// that activate, and every bad input.
func sdInputs() []sdInput {
	self := envSelfPID + "=1"
	inputs := []sdInput{
		{name: "two named", env: activated("http", "admin")},
		{name: "names not set", env: []string{self, EnvFDs + "=2"}},
		{name: "one of two", env: activated("only")},
		{name: "empty fields", env: activated("", "")},
		{name: "fds not open", env: []string{self, EnvFDs + "=40"}},
		{name: "LISTEN_FDS empty", env: []string{self, EnvFDs + "="}},
	}
	for _, tt := range badInputs {
		inputs = append(inputs, sdInput{name: tt.name, env: sdEnv(tt.env, 0), stricter: libsystemdAccepts[tt.name]})
	}
	return inputs
}

// sdEnv turns a parse test's environ into variables for a real process:
// LISTEN_PID 4242 becomes the process's own pid, LISTEN_PIDFDID 77 its
// own pidfd inode number and 78 stale (another process's).
func sdEnv(e environ, stale uint64) []string {
	var env []string
	if e.hasPID {
		if e.pid == "4242" {
			env = append(env, envSelfPID+"=1")
		} else {
			env = append(env, EnvPID+"="+e.pid)
		}
	}
	if e.hasPIDFDID {
		switch e.pidfdID {
		case "77":
			env = append(env, envSelfPIDFDID+"=1")
		case "78":
			env = append(env, EnvPIDFDID+"="+strconv.FormatUint(stale, 10))
		default:
			env = append(env, EnvPIDFDID+"="+e.pidfdID)
		}
	}
	if e.hasFDs {
		env = append(env, EnvFDs+"="+e.fds)
	}
	if e.hasNames {
		env = append(env, EnvNames+"="+e.names)
	}
	return env
}

// TestSameAsLibsystemd runs libsystemd's sd_listen_fds_with_names and
// Receive on the same fds and variables: every input libsystemd refuses,
// Receive refuses; not activated is 0 fds there and ErrNotActivated here;
// where both accept, the count and names agree. Receive is stricter in the
// documented ways only (number syntax, name validity).
func TestSameAsLibsystemd(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	compareWithLibsystemd(t, []string{buildSdListen(t, "")}, sdInputs())
}

// TestSameAsLibsystemd258 does the same with the libsystemd of a Debian
// release whose systemd is 258 or later (sid, from .ci/systemd-tree), run
// by that release's own dynamic loader and C library, on the same inputs
// plus LISTEN_PIDFDID: the process's own pidfd inode number, another
// process's (a stale one), and malformed values.
func TestSameAsLibsystemd258(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	root, version := testproc.SystemdRoot("sid")
	testproc.Require(t, version >= 258, "needs a Debian root with systemd 258+ in $BATON_SYSTEMD_ROOTS/systemd-sid or "+
		testproc.DefaultSystemdRoots+"/systemd-sid (.ci/systemd-tree sid DIR)")
	stale := requirePidfs(t)
	libs, _ := filepath.Glob(filepath.Join(root, "usr/lib/*/libsystemd.so.0"))
	loaders, _ := filepath.Glob(filepath.Join(root, "usr/lib*/ld-linux*.so.*"))
	if len(libs) != 1 || len(loaders) == 0 {
		t.Fatalf("%s: libsystemd %q, dynamic loader %q: want one of each", root, libs, loaders)
	}
	libDir := filepath.Dir(libs[0])
	argv := []string{loaders[0], "--library-path", libDir, buildSdListen(t, libDir)}
	t.Logf("libsystemd of systemd %d: %s", version, libs[0])
	inputs := sdInputs()
	for _, tt := range pidfdidInputs {
		inputs = append(inputs, sdInput{name: tt.name, env: sdEnv(tt.env, stale), stricter: libsystemdAccepts[tt.name]})
	}
	compareWithLibsystemd(t, argv, inputs)
}

func compareWithLibsystemd(t *testing.T, argv []string, inputs []sdInput) {
	t.Helper()
	a, b := listenTCP(t), listenTCP(t)
	files := []*os.File{fileOf(t, a), fileOf(t, b)}
	for _, f := range files {
		t.Cleanup(func() { _ = f.Close() })
	}
	for _, in := range inputs {
		t.Run(in.name, func(t *testing.T) {
			sd := runSdListen(t, argv, files, in.env)
			ours := runHelper(t, "receive", files, in.env)
			if sd.left != 0 || len(ours.EnvLeft) > 0 {
				t.Errorf("variables left: libsystemd %d, Receive %q", sd.left, ours.EnvLeft)
			}
			switch {
			case in.stricter:
				if sd.n < 0 || ours.Err == "" || ours.NotActivated {
					t.Errorf("expected libsystemd to accept (got %d) and Receive to refuse (got %q)", sd.n, ours.Err)
				}
				t.Logf("libsystemd accepts (%d fds, names %q); Receive: %s", sd.n, sd.names, ours.Err)
			case sd.n < 0:
				if ours.Err == "" || ours.NotActivated {
					t.Errorf("libsystemd: %d; Receive: %q (not activated: %v)", sd.n, ours.Err, ours.NotActivated)
				}
			case sd.n == 0:
				if !ours.NotActivated {
					t.Errorf("libsystemd: 0 fds; Receive: %q", ours.Err)
				}
			default:
				if ours.Err != "" {
					t.Fatalf("libsystemd: %d fds %q; Receive: %s", sd.n, sd.names, ours.Err)
				}
				var names []string
				for _, f := range ours.Files {
					names = append(names, f.Name)
				}
				if len(ours.Files) != sd.n || strings.Join(names, "\x00") != strings.Join(sd.names, "\x00") {
					t.Errorf("libsystemd: %d fds %q; Receive: %d fds %q", sd.n, sd.names, len(ours.Files), names)
				}
			}
		})
	}
}

// libsystemdAccepts names the bad inputs whose syntax libsystemd takes
// and Receive refuses: libsystemd parses numbers with strtol and base
// prefixes (leading blanks, '+', "0x", and "01" as octal), and does not
// check the names it hands out. (" 4242" and "+4242" are another process
// to libsystemd: 0 fds.)
var libsystemdAccepts = map[string]bool{
	"LISTEN_PID with space":   true,
	"LISTEN_PID plus sign":    true,
	"LISTEN_PID hex":          true,
	"LISTEN_FDS plus sign":    true,
	"LISTEN_FDS hex":          true,
	"LISTEN_FDS leading zero": true,
	"LISTEN_PID leading zero": true,
	"name over 255 bytes":     true,
	"name with newline":       true,
	"name with tab":           true,
	"name with DEL":           true,
	"name with escape":        true,
	"name not ASCII":          true,
	// libsystemd 258+ reads LISTEN_PIDFDID with the same strtoull rules
	// (and takes 0, which names no process).
	"PIDFDID plus sign":    true,
	"PIDFDID with space":   true,
	"PIDFDID leading zero": true,
	"PIDFDID zero":         true,
}

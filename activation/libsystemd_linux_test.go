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
#include <unistd.h>

int sd_listen_fds_with_names(int unset_environment, char ***names);

int main(void) {
	char pid[32];
	if (getenv("` + envSelfPID + `")) {
		snprintf(pid, sizeof pid, "%d", (int)getpid());
		setenv("LISTEN_PID", pid, 1);
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
	printf("left %d\n", !!getenv("LISTEN_PID") + !!getenv("LISTEN_FDS") + !!getenv("LISTEN_FDNAMES"));
	return 0;
}
`

// buildSdListen compiles sdListenC against the system's libsystemd.
func buildSdListen(t *testing.T) string {
	t.Helper()
	gcc := testproc.LookPath(t, "gcc")
	dir := t.TempDir()
	src, bin := filepath.Join(dir, "sdlisten.c"), filepath.Join(dir, "sdlisten")
	if err := os.WriteFile(src, []byte(sdListenC), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(gcc, "-o", bin, src, "-l:libsystemd.so.0").CombinedOutput()
	testproc.Require(t, err == nil, "needs libsystemd.so.0 to link against: "+strings.TrimSpace(string(out)))
	return bin
}

type sdResult struct {
	n     int // sd_listen_fds_with_names: count, 0, or -errno
	names []string
	left  int
}

func runSdListen(t *testing.T, bin string, files []*os.File, env []string) sdResult {
	t.Helper()
	cmd := exec.Command(bin)
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

// TestSameAsLibsystemd runs libsystemd's sd_listen_fds_with_names and
// Receive on the same fds and variables: every input libsystemd refuses,
// Receive refuses; not activated is 0 fds there and ErrNotActivated here;
// where both accept, the count and names agree. Receive is stricter in the
// documented ways only (number syntax, name validity).
func TestSameAsLibsystemd(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	bin := buildSdListen(t)
	a, b := listenTCP(t), listenTCP(t)
	files := []*os.File{fileOf(t, a), fileOf(t, b)}
	for _, f := range files {
		t.Cleanup(func() { _ = f.Close() })
	}

	type input struct {
		name string
		env  []string
		// stricter: libsystemd accepts it, Receive refuses (documented).
		stricter bool
	}
	self := envSelfPID + "=1"
	inputs := []input{
		{name: "two named", env: activated("http", "admin")},
		{name: "names not set", env: []string{self, EnvFDs + "=2"}},
		{name: "one of two", env: activated("only")},
		{name: "empty fields", env: activated("", "")},
		{name: "fds not open", env: []string{self, EnvFDs + "=40"}},
		{name: "LISTEN_FDS empty", env: []string{self, EnvFDs + "="}},
	}
	for _, tt := range badInputs {
		var env []string
		if tt.env.hasPID {
			if tt.env.pid == "4242" {
				env = append(env, self)
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
		inputs = append(inputs, input{name: tt.name, env: env, stricter: libsystemdAccepts[tt.name]})
	}
	for _, in := range inputs {
		t.Run(in.name, func(t *testing.T) {
			sd := runSdListen(t, bin, files, in.env)
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

// libsystemdAccepts names the bad inputs whose syntax libsystemd 252 takes
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
}

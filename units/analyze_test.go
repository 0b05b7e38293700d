package units

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/batonhq/baton/internal/testproc"
)

// analyzer runs one systemd's systemd-analyze.
type analyzer struct {
	version int
	path    string
	env     []string // extra environment (the library path of an unpacked tree)
}

func (a analyzer) run(t *testing.T, dir string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(a.path, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), a.env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// analyzers returns the machine's systemd-analyze and, when
// testproc.SystemdTree names an unpacked newer systemd (.ci/fetch-systemd),
// that one too.
func analyzers(t *testing.T) []analyzer {
	t.Helper()
	host := analyzer{path: testproc.LookPath(t, "systemd-analyze")}
	host.version = analyzeVersion(t, host)
	as := []analyzer{host}
	if tree := testproc.SystemdTree(); tree != "" {
		libs, _ := filepath.Glob(filepath.Join(tree, "usr/lib/*/systemd"))
		tr := analyzer{
			path: filepath.Join(tree, "usr/bin/systemd-analyze"),
			env:  []string{"LD_LIBRARY_PATH=" + strings.Join(libs, ":")},
		}
		tr.version = analyzeVersion(t, tr)
		as = append(as, tr)
	}
	return as
}

func analyzeVersion(t *testing.T, a analyzer) int {
	t.Helper()
	out, stderr, err := a.run(t, "", "--version")
	m := regexp.MustCompile(`^systemd (\d+)`).FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("%s --version: %v %s%s", a.path, err, out, stderr)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

var exposureRE = regexp.MustCompile(`Overall exposure level for \S+: (\d+\.\d+)`)

// TestAnalyze checks every unit of the golden table with systemd-analyze:
// verify must print nothing on stderr, and the service's security exposure
// must be at most the case's bound. Each systemd at hand that knows every
// option of the case checks it; a case for a newer systemd than the
// machine's needs BATON_SYSTEMD_TREE.
func TestAnalyze(t *testing.T) {
	testproc.CheckFDs(t)
	testproc.CheckGoroutines(t)
	as := analyzers(t)
	// The units must name programs that exist for verify to be quiet.
	exe, err := exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range specs {
		t.Run(tt.name, func(t *testing.T) {
			spec := tt.spec
			spec.Exec = append([]string{exe}, spec.Exec[1:]...)
			spec.Baton = exe
			files, err := Generate(spec)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if err := Write(dir, files); err != nil {
				t.Fatal(err)
			}
			paths := make([]string, len(files))
			for i, f := range files {
				paths[i] = "./" + f.Name
			}
			want := spec.SystemdVersion
			if want == 0 {
				want = DefaultSystemdVersion
			}
			ran := 0
			for _, a := range as {
				if a.version < want {
					continue
				}
				ran++
				out, stderr, err := a.run(t, dir, append([]string{"verify"}, paths...)...)
				if err != nil || stderr != "" {
					t.Errorf("systemd %d: systemd-analyze verify: %v\nstdout:\n%s\nstderr:\n%s", a.version, err, out, stderr)
				}
				out, stderr, err = a.run(t, dir, "security", "--offline=true", "./"+files[0].Name)
				m := exposureRE.FindStringSubmatch(out)
				if m == nil {
					t.Fatalf("systemd %d: systemd-analyze security: %v, no exposure level in\n%s%s", a.version, err, out, stderr)
				}
				score, _ := strconv.ParseFloat(m[1], 64)
				t.Logf("systemd %d: %s exposure %.1f", a.version, files[0].Name, score)
				if score > tt.maxExposure {
					t.Errorf("systemd %d: %s exposure %.1f, want <= %.1f:\n%s", a.version, files[0].Name, score, tt.maxExposure, out)
				}
			}
			testproc.Require(t, ran > 0, "needs systemd-analyze "+strconv.Itoa(want)+" or newer (set BATON_SYSTEMD_TREE, see .ci/fetch-systemd)")
		})
	}
}

//go:build linux

package e2e

import (
	"strings"
	"testing"
)

// TestSandboxRelaxed checks the README's "my app needs" table under a
// real systemd: under the default units of `baton units` an application
// cannot reach a server on localhost, read a root-only config or write a
// file, each with the error the table names; with the flags the table
// gives (--allow-network --allow-ip localhost, --state-dir) it can. The
// probe (e2e/internal/sandboxprobe) prints what it could do.
//
// --credential (LoadCredential=) is not checked here: in the box, systemd
// 252 loads no credential at all (the service's credentials directory is
// empty even for a root service), an effect of the box, not of the units.
func TestSandboxRelaxed(t *testing.T) {
	p := buildProduct(t)
	probe := Build(t, "./e2e/internal/sandboxprobe")
	for _, tc := range []struct {
		name  string
		flags []string
		want  []string // journal lines
	}{
		{
			name: "default",
			want: []string{
				"probe dial: error dial tcp 127.0.0.1:8080: socket: address family not supported by protocol",
				"probe config: error open /etc/probe.toml: permission denied",
				"probe write: error open /var/lib/probe/probe: read-only file system",
			},
		},
		{
			name:  "relaxed",
			flags: []string{"--allow-network", "--allow-ip", "localhost", "--state-dir"},
			want: []string{
				"probe dial: ok 127.0.0.1:8080",
				"probe write: ok /var/lib/probe/probe",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			box := boxWithProduct(t, Config{})
			// A root-only config, and a directory anyone may write to: only
			// the read-only file system stops the default probe.
			box.Run("sh", "-c", "umask 077 && echo secret=1 > /etc/probe.toml && mkdir -p -m 1777 /var/lib/probe")
			args := append([]string{"--name", "probe", "--exec", probe, "--listen", "http=tcp://127.0.0.1:8080"}, tc.flags...)
			install(t, box, p.units(t, args...))
			box.Systemctl("start", "probe-http.socket", "probe.service")
			journal := box.Journal("probe.service")
			for _, w := range tc.want {
				if !strings.Contains(journal, w) {
					t.Errorf("the journal lacks %q:\n%s", w, journal)
				}
			}
		})
	}
}

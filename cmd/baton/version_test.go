package main

import (
	"bytes"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestPrintVersion(t *testing.T) {
	platform := runtime.GOOS + "/" + runtime.GOARCH
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		ok   bool
		want string
	}{
		{
			name: "go install at a tag",
			bi: &debug.BuildInfo{
				GoVersion: "go1.26.8",
				Main:      debug.Module{Path: "github.com/batonhq/baton", Version: "v0.3.0"},
			},
			ok:   true,
			want: "baton v0.3.0 (go1.26.8 " + platform + ")\n",
		},
		{
			name: "go build in a checkout with changes",
			bi: &debug.BuildInfo{
				GoVersion: "go1.26.8",
				Main:      debug.Module{Path: "github.com/batonhq/baton", Version: "v0.0.0-20261207195223-68dffc5da79e+dirty"},
				Settings: []debug.BuildSetting{
					{Key: "vcs", Value: "git"},
					{Key: "vcs.revision", Value: "68dffc5da79e7181d70a0d112f2cd887c65c24b1"},
					{Key: "vcs.time", Value: "2026-12-07T19:52:23Z"},
					{Key: "vcs.modified", Value: "true"},
				},
			},
			ok:   true,
			want: "baton v0.0.0-20261207195223-68dffc5da79e+dirty (rev 68dffc5da79e, 2026-12-07T19:52:23Z, modified, go1.26.8 " + platform + ")\n",
		},
		{
			name: "no build information",
			want: "baton (unknown) (" + runtime.Version() + " " + platform + ")\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			printVersion(&b, tt.bi, tt.ok)
			if got := b.String(); got != tt.want {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestVersionCommand runs the built binary: baton version and baton
// --version print the same line, with the module version the binary
// carries and the Go release that built it.
func TestVersionCommand(t *testing.T) {
	v := baton(t, "version")
	if v.code != exitOK || v.stderr != "" {
		t.Fatalf("baton version: exit status %d, stderr %q", v.code, v.stderr)
	}
	if !strings.HasPrefix(v.stdout, "baton ") || !strings.Contains(v.stdout, runtime.Version()+" ") || strings.Count(v.stdout, "\n") != 1 {
		t.Errorf("baton version printed %q, want one line naming %s", v.stdout, runtime.Version())
	}
	if dv := baton(t, "--version"); dv.code != exitOK || dv.stdout != v.stdout {
		t.Errorf("baton --version: exit status %d, stdout %q; want 0 and %q", dv.code, dv.stdout, v.stdout)
	}
	if bad := baton(t, "version", "extra"); bad.code != exitUsage {
		t.Errorf("baton version extra: exit status %d, want %d", bad.code, exitUsage)
	}
}

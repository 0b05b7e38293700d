package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

const versionUsage = `
baton version

Prints baton's module version, the VCS revision it was built from and the
Go release that built it, from the binary's build information:

  baton v0.3.0 (go1.26.8 linux/amd64)                        go install ...@v0.3.0
  baton v0.3.1-0.20261207... (rev 1a36630c0ffe, modified)    go build in a checkout

A binary built by 'go install github.com/batonhq/baton/cmd/baton@VERSION'
carries the module version and no revision; one built in a git checkout
carries the revision, its time and whether the tree had changes. 'baton
--version' prints the same.`

type versionCommand struct {
	io    stdio
	flags *flagSet
}

func newVersionCmd(io stdio) command {
	return &versionCommand{io: io, flags: newFlagSet("version", versionUsage, io.Stdout)}
}

func (c *versionCommand) Run(_ context.Context, args []string) error {
	if err := c.flags.parse(args); err != nil {
		return err
	}
	if err := c.flags.noArgs(); err != nil {
		return err
	}
	bi, ok := debug.ReadBuildInfo()
	printVersion(c.io.Stdout, bi, ok)
	return nil
}

// printVersion writes the one line of baton version from bi (ok false: a
// binary built without module support, which has none).
func printVersion(w io.Writer, bi *debug.BuildInfo, ok bool) {
	version, goVersion := "(unknown)", runtime.Version()
	var vcs []string
	if ok {
		goVersion = bi.GoVersion
		if v := bi.Main.Version; v != "" {
			version = v
		}
		settings := map[string]string{}
		for _, s := range bi.Settings {
			settings[s.Key] = s.Value
		}
		if rev := settings["vcs.revision"]; rev != "" {
			vcs = append(vcs, "rev "+shortRev(rev))
			if t := settings["vcs.time"]; t != "" {
				vcs = append(vcs, t)
			}
			if settings["vcs.modified"] == "true" {
				vcs = append(vcs, "modified")
			}
		}
	}
	vcs = append(vcs, goVersion+" "+runtime.GOOS+"/"+runtime.GOARCH)
	fmt.Fprintf(w, "baton %s (%s)\n", version, strings.Join(vcs, ", "))
}

// shortRev shortens a git revision to 12 hex digits, as Go's
// pseudo-versions do.
func shortRev(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/batonhq/baton/activation"
)

const fdsUsage = `
baton fds [--json]

Prints the file descriptors this process was handed by systemd or
systemd-socket-activate (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES): fd
number, name, kind, whether it listens, and local address. With --json,
one JSON object per fd and line:

  {"fd":3,"name":"http","kind":"tcp","listening":true,"network":"tcp","addr":"127.0.0.1:8080"}

For debugging unit files: as ExecStartPre=, or under
systemd-socket-activate -l ADDR --fdname=NAME baton fds.

A process that was handed nothing (no LISTEN_PID for it) prints nothing on
stdout, says so on stderr and exits 0: that is an answer, not a failure,
and an ExecStartPre= must not fail the start for it. Malformed variables
exit 1.

Linux only: on other systems baton fds exits 1 at once ("baton fds: not
supported on darwin: ...").`

type fdsCmd struct {
	io    stdio
	flags *flagSet
	json  bool
}

func newFDsCmd(io stdio) command {
	c := &fdsCmd{io: io, flags: newFlagSet("fds", fdsUsage, io.Stdout)}
	c.flags.BoolVar(&c.json, "json", false, "print one JSON object per fd and line")
	return c
}

// fdJSON is one line of `baton fds --json`.
type fdJSON struct {
	FD        int    `json:"fd"`
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	Listening bool   `json:"listening"`
	Network   string `json:"network,omitempty"` // the address's network, when it has one
	Addr      string `json:"addr,omitempty"`
}

func (c *fdsCmd) Run(_ context.Context, args []string) error {
	if err := c.flags.parse(args); err != nil {
		return err
	}
	if err := c.flags.noArgs(); err != nil {
		return err
	}
	set, err := activation.Receive()
	if errors.Is(err, activation.ErrNotActivated) {
		fmt.Fprintf(c.io.Stderr, "baton fds: no file descriptors: %v\n", err)
		return nil
	}
	if err != nil {
		return err
	}
	defer set.Close()

	var rows []fdJSON
	for _, f := range set.Files() {
		r := fdJSON{FD: f.FD, Name: f.Name, Kind: f.Kind.String(), Listening: f.Listening}
		if f.Addr != nil {
			r.Network, r.Addr = f.Addr.Network(), f.Addr.String()
		}
		rows = append(rows, r)
	}
	if c.json {
		enc := json.NewEncoder(c.io.Stdout)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(c.io.Stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "FD\tNAME\tKIND\tLISTENING\tADDRESS")
	for _, r := range rows {
		addr := r.Addr
		if addr == "" {
			addr = "-"
		} else if r.Network != "" && r.Network != r.Kind {
			addr = r.Network + " " + addr
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", r.FD, r.Name, r.Kind, yesNo(r.Listening), addr)
	}
	return tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

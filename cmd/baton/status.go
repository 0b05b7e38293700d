package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/batonhq/baton/handoff"
	"github.com/batonhq/baton/internal/control"
	"github.com/batonhq/baton/internal/supervisor"
)

const statusUsage = `
baton status (--pid PID | --pidfile FILE) [--json]

Shows what a running baton process knows of its service: for a server
built with package handoff, the generation serving (its pid, state,
sockets, open connections), the older generations still draining with
their open connections and deadlines, and the last 32 upgrades with their
outcomes and reasons (the history travels from generation to generation);
for 'baton run', the children by generation (with --workers, by worker:
version, the upgrade that started it, and restarts) and the last 32
upgrades (outcome rolled-back for a watch window's rollback). Only the
process's own user and root may ask.

With --json, stdout has one JSON object: pid, generation, state
(starting, serving, draining, stopping), started (RFC 3339), exe,
connections, sockets [{name, kind, addr}], draining [{pid, generation,
connections, since, deadline}], upgrades [{generation, pid, outcome (ok,
failed, abandoned, rolled-back), reason, started, duration_ms}],
counters (upgrades_rolled_back counted in upgrades_failed too), and for
'baton run' children [{pid, generation, state (starting, serving,
standby, draining), started, status, and in a pool worker, version,
restarts}] and, with --workers, pool {workers, max_surge, peak,
worker_exits, restarts, failed_starts}.

On an error --json prints {"error":...,"code":...} on stdout, as baton
reload --json does (code denied, no-server, no-reply, timeout or failed),
and the message on stderr.

Exit status: 0 shown; 1 the process answered with an error; 2 bad command
line; 4 permission denied; 5 no baton process there, or no answer within
--timeout.

Linux only: on other systems baton status exits 1 at once ("baton status: not
supported on darwin: ...").`

type statusCommand struct {
	io    stdio
	flags *flagSet
	target
	timeout time.Duration
	json    bool
}

func newStatusCmd(io stdio) command {
	c := &statusCommand{io: io, flags: newFlagSet("status", statusUsage, io.Stdout)}
	c.register(c.flags, "the process to ask")
	c.flags.DurationVar(&c.timeout, "timeout", 5*time.Second, "give up waiting for the answer after this long")
	c.flags.BoolVar(&c.json, "json", false, "print the status as one JSON object")
	return c
}

// serviceStatus is what a handoff server or baton run answers.
type serviceStatus struct {
	handoff.Status
	Children []supervisor.Child `json:"children,omitempty"` // baton run
	Pool     *poolStatus        `json:"pool,omitempty"`     // baton run --workers N
}

// poolStatus is the state of baton run's pool.
type poolStatus struct {
	Workers      int `json:"workers"`       // the wanted size
	MaxSurge     int `json:"max_surge"`     //
	Peak         int `json:"peak"`          // the most CMDs at once, draining ones included
	WorkerExits  int `json:"worker_exits"`  // outside upgrades
	Restarts     int `json:"restarts"`      // workers started again after an exit
	FailedStarts int `json:"failed_starts"` // restarts and resizes that failed
}

func (c *statusCommand) Run(ctx context.Context, args []string) error {
	if err := c.flags.parse(args); err != nil {
		return err
	}
	if c.flags.NArg() > 0 {
		return usagef("status", "unexpected argument %q", c.flags.Arg(0))
	}
	pid, err := c.resolve("status")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	raw, err := control.Status(ctx, pid)
	if err != nil {
		code, name := exitFailure, control.CodeFailed
		switch {
		case errors.Is(err, control.ErrDenied):
			code, name, err = exitDenied, control.CodeDenied, fmt.Errorf("permission denied: %w", err)
		case errors.Is(err, control.ErrNoServer):
			code, name = exitNoServer, "no-server"
		case errors.Is(err, control.ErrNoReply):
			code, name = exitNoServer, "no-reply"
		case errors.Is(err, context.DeadlineExceeded):
			code, name = exitNoServer, "timeout"
		}
		if c.json {
			// As baton reload --json: a machine reading stdout gets the error too.
			_ = json.NewEncoder(c.io.Stdout).Encode(reloadJSON{Error: err.Error(), Code: name})
		}
		return &exitError{code: code, err: err}
	}
	if c.json {
		_, err := fmt.Fprintf(c.io.Stdout, "%s\n", raw)
		return err
	}
	var st serviceStatus
	if err := json.Unmarshal(raw, &st); err != nil {
		return fmt.Errorf("status of pid %d: %w", pid, err)
	}
	return printStatus(c.io.Stdout, st, time.Now())
}

// printStatus writes st as a few lines and tables.
func printStatus(w io.Writer, st serviceStatus, now time.Time) error {
	ago := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.Local().Format("15:04:05") + " (" + now.Sub(t).Round(time.Millisecond).String() + " ago)"
	}
	clock := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.Local().Format("15:04:05")
	}
	fmt.Fprintf(w, "pid %d, generation %d, %s, started %s\n", st.PID, st.Generation, st.State, ago(st.Started))
	fmt.Fprintf(w, "exe %s\n", st.Exe)
	if st.Connections >= 0 {
		fmt.Fprintf(w, "connections %d\n", st.Connections)
	}
	if !st.DrainDeadline.IsZero() {
		fmt.Fprintf(w, "draining since %s, deadline %s\n", ago(st.DrainSince), clock(st.DrainDeadline))
	}
	switch wa := st.Watch; {
	case wa == nil:
	case wa.Role == "watching":
		fmt.Fprintf(w, "watch window: generation %d (pid %d) serves, this one holds the main PID until %s\n", wa.Generation, wa.PID, clock(wa.Until))
	default:
		fmt.Fprintf(w, "watch window: generation %d (pid %d) holds the main PID; this one serves on probation\n", wa.Generation, wa.PID)
	}
	table := func(header string, rows [][]string) {
		if len(rows) == 0 {
			return
		}
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, header)
		for _, r := range rows {
			fmt.Fprintln(tw, strings.Join(r, "\t"))
		}
		_ = tw.Flush()
	}
	var rows [][]string
	for _, s := range st.Sockets {
		rows = append(rows, []string{s.Name, s.Kind, s.Addr})
	}
	table("SOCKET\tKIND\tADDRESS", rows)
	rows = nil
	if p := st.Pool; p != nil {
		fmt.Fprintf(w, "\nworkers %d (max surge %d), exits %d, restarts %d, failed starts %d, most at once %d\n",
			p.Workers, p.MaxSurge, p.WorkerExits, p.Restarts, p.FailedStarts, p.Peak)
		for _, ch := range st.Children {
			rows = append(rows, []string{
				strconv.Itoa(ch.Worker), strconv.Itoa(ch.PID), strconv.Itoa(ch.Version), strconv.Itoa(ch.Generation),
				ch.State, ago(ch.Started), strconv.Itoa(ch.Restarts), ch.Status,
			})
		}
		table("WORKER\tPID\tVERSION\tGENERATION\tSTATE\tSTARTED\tRESTARTS\tSTATUS", rows)
	} else {
		for _, ch := range st.Children {
			rows = append(rows, []string{strconv.Itoa(ch.PID), strconv.Itoa(ch.Generation), ch.State, ago(ch.Started), ch.Status})
		}
		table("CHILD PID\tGENERATION\tSTATE\tSTARTED\tSTATUS", rows)
	}
	rows = nil
	for _, d := range st.Draining {
		conns := "?"
		if d.Connections >= 0 {
			conns = strconv.Itoa(d.Connections)
		}
		rows = append(rows, []string{strconv.Itoa(d.PID), strconv.Itoa(d.Generation), conns, ago(d.Since), clock(d.Deadline)})
	}
	table("DRAINING PID\tGENERATION\tCONNECTIONS\tSINCE\tDEADLINE", rows)
	c := st.Counters
	failed := strconv.Itoa(c.UpgradesFailed)
	if c.UpgradesRolledBack > 0 {
		failed += fmt.Sprintf(" (%d rolled back)", c.UpgradesRolledBack)
	}
	fmt.Fprintf(w, "\nupgrades: ok %d, failed %s, abandoned %d\n", c.UpgradesOK, failed, c.UpgradesAbandoned)
	rows = nil
	for _, u := range st.Upgrades {
		rows = append(rows, []string{strconv.Itoa(u.Generation), strconv.Itoa(u.PID), u.Outcome, clock(u.Started), u.Duration.Round(100 * time.Microsecond).String(), u.Reason})
	}
	if len(rows) > 0 {
		table("GENERATION\tPID\tOUTCOME\tSTARTED\tTOOK\tREASON", rows)
	}
	return nil
}

// runStatus is what baton run answers to `baton status`.
// pool is set for --workers above 1, with maxSurge its --max-surge.
func runStatus(sup *supervisor.Supervisor, started time.Time, exe string, socks []supervisor.Socket, pool bool, maxSurge int) serviceStatus {
	st := serviceStatus{Status: handoff.Status{
		PID: os.Getpid(), State: handoff.StateServing, Started: started, Exe: exe, Connections: -1,
		Sockets: []handoff.SocketStatus{}, Draining: []handoff.DrainStatus{}, Upgrades: []handoff.UpgradeRecord{},
	}}
	if sup.Stopping() {
		st.State = handoff.StateStopping
	}
	stats := sup.Stats()
	st.Counters = handoff.Counters{
		UpgradesOK: stats.Upgrades, UpgradesFailed: stats.FailedUpgrades + stats.RolledBack, UpgradesRolledBack: stats.RolledBack,
		HandoffSeconds: []float64{}, DrainSeconds: []float64{},
	}
	for _, u := range sup.History() {
		st.Upgrades = append(st.Upgrades, handoff.UpgradeRecord{
			Generation: u.Generation, PID: u.PID, Outcome: u.Outcome, Reason: u.Reason, Started: u.Started, Duration: u.Duration,
		})
	}
	if pool {
		st.Pool = &poolStatus{
			Workers: stats.Workers, MaxSurge: maxSurge, Peak: stats.Peak,
			WorkerExits: stats.WorkerExits, Restarts: stats.Restarts, FailedStarts: stats.FailedStarts,
		}
	}
	for _, s := range socks {
		st.Sockets = append(st.Sockets, socketStatus(s))
	}
	st.Children = sup.Children()
	for _, ch := range st.Children {
		switch ch.State {
		case "serving":
			if st.Generation == 0 {
				st.Generation = ch.Generation
			}
		case "draining":
			st.Draining = append(st.Draining, handoff.DrainStatus{PID: ch.PID, Generation: ch.Generation, Connections: -1})
		}
	}
	return st
}
